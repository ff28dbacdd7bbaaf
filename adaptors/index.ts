/**
 * The adaptors part: one LLM adaptor interface (spec), its OpenAI, Anthropic and Ollama
 * implementations, and the chat gateway that serves them under /v1.
 */
export type {
  ChatMessage,
  ChatModel,
  ChatModelSettings,
  ChatRequest,
  ChatResult,
  ChatStreamEvent,
  FinishReason,
  ProviderKind,
  TextPart,
  ToolCallPart,
  ToolChoice,
  ToolDefinition,
  ToolResultPart,
  Usage,
} from './spec/chat-model.ts'
export { ChatModelError, isChatModelError, parseRetryAfter, type ChatModelErrorCode } from './spec/chat-model-error.ts'
export { ChatStreamAssembler, collectStream } from './spec/chat-stream.ts'
export { createOpenAIChatModel } from './openai/openai-chat-model.ts'
export { createAnthropicChatModel } from './anthropic/anthropic-chat-model.ts'
export { createOllamaChatModel } from './ollama/ollama-chat-model.ts'
export { registerChatGateway, type ChatGatewayOptions, type ChatGatewayServices } from './chat-gateway/chat-gateway.ts'
export { ModelCaller, defaultRetryPolicy, type RetryPolicy } from './chat-gateway/model-caller.ts'
