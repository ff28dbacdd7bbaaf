import { chatModelContract } from '../testing/chat-model-contract.ts'
import { startStubOpenAIServer } from '../testing/stub-openai-server.ts'
import { createOpenAIChatModel } from './openai-chat-model.ts'

chatModelContract({ name: 'openai', startStub: startStubOpenAIServer, createModel: createOpenAIChatModel, baseUrl: (url) => `${url}/v1` })
