import { chatModelContract } from '../testing/chat-model-contract.ts'
import { startStubOllamaServer } from '../testing/stub-ollama-server.ts'
import { createOllamaChatModel } from './ollama-chat-model.ts'

chatModelContract({ name: 'ollama', startStub: startStubOllamaServer, createModel: createOllamaChatModel, baseUrl: (url) => url })
