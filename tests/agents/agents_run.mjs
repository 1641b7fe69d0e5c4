// An OpenAI Agents SDK run with a function tool, against the gateway at BASE_URL.
import OpenAI from 'openai';
import { Agent, run, tool, setDefaultOpenAIClient, setTracingDisabled } from '@openai/agents';
import { z } from 'zod';

setTracingDisabled(true);
setDefaultOpenAIClient(new OpenAI({ baseURL: process.env.BASE_URL, apiKey: 'unused' }));
const weather = tool({
  name: 'get_weather',
  description: 'Weather in a city',
  parameters: z.object({ city: z.string() }),
  execute: async ({ city }) => `Sunny in ${city}`,
});
const agent = new Agent({ name: 'A', instructions: 'Be brief.', model: process.env.MODEL, tools: [weather] });
const result = await run(agent, 'Weather in Paris?', { stream: process.env.STREAM === '1' });
if (process.env.STREAM === '1') {
  for await (const _ of result) { /* drain */ }
  await result.completed;
}
console.log('FINAL:', result.finalOutput);
