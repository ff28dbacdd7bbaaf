import { chatModelContract } from '../testing/chat-model-contract.ts'
import { startStubAnthropicServer } from '../testing/stub-anthropic-server.ts'
import { createAnthropicChatModel } from './anthropic-chat-model.ts'

chatModelContract({ name: 'anthropic', startStub: startStubAnthropicServer, createModel: createAnthropicChatModel, baseUrl: (url) => url })
