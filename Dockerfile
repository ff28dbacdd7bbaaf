# imprun: one image for every role — `imprun start` (embedded), `imprun control` (cluster control
# plane) and `imprun runtime` (one gateway environment). Node runs the TypeScript sources directly.
#
#   docker build -t ghcr.io/<you>/imprun:0.1.0 .

# --- dependencies (isolated-vm and esbuild build native parts: needs the full image's toolchain)
FROM node:24-bookworm AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime image
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY control ./control
COPY runtime ./runtime
COPY mcp-server ./mcp-server
COPY adaptors ./adaptors
# Non-root, numeric (Kubernetes runAsNonRoot checks the number); nothing under /app is writable.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["node", "bin/imprun.ts"]
CMD ["start", "--host", "0.0.0.0", "--data-dir", "/tmp/imprun"]
