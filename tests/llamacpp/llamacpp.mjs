// Runs a GGUF file in llama.cpp (node-llama-cpp's prebuilt CPU build) and prints one JSON object on stdout.
//   node llamacpp.mjs perplexity MODEL FILE CTX CHUNKS   llama-perplexity's windowing (BOS first, second half scored):
//                                                        {ppl, ctx, windows, scored, tokens, logprobs}
//   node llamacpp.mjs generate MODEL PROMPT N            greedy: {prompt: ids (no BOS), generated: ids}
//   node llamacpp.mjs tokenize MODEL < strings.json      a JSON array of strings in, {tokens: [[ids (no BOS)]...]} out
import fs from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [command, modelPath, ...args] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const threads = 2;

if (command === "perplexity") {
  const [file, ctxArg, chunksArg] = args;
  const n = Number(ctxArg), maxChunks = Number(chunksArg ?? 0);
  const ctx = await model.createContext({contextSize: n, batchSize: n, threads});
  const seq = ctx.getSequence();
  const tokens = [model.tokens.bos, ...model.tokenize(fs.readFileSync(file, "utf8"))];
  let windows = Math.floor(tokens.length / n);
  if (maxChunks > 0) windows = Math.min(windows, maxChunks);
  const first = n / 2, scored = [], logprobs = [];
  // temperature 1 with every filter off: the probabilities are the plain softmax of the logits.
  const plain = {temperature: 1, topK: 0, topP: 1, minP: 0};
  for (let w = 0; w < windows; w++) {
    await seq.clearHistory();
    const start = w * n, input = [];
    for (let pos = 0; pos < n; pos++) {
      const token = pos === 0 ? model.tokens.bos : tokens[start + pos];
      input.push(pos >= first && pos < n - 1 ? [token, {generateNext: {probabilities: true, options: plain}}] : token);
    }
    const results = await seq.controlledEvaluate(input);
    for (let pos = first; pos < n - 1; pos++) {
      const target = tokens[start + pos + 1];
      scored.push(target);
      logprobs.push(Math.log(results[pos].next.probabilities.get(target) ?? 0));
    }
  }
  const mean = -logprobs.reduce((a, b) => a + b, 0) / logprobs.length;
  console.log(JSON.stringify({ppl: Math.exp(mean), ctx: n, windows, scored: scored.length, tokens: scored, logprobs}));
} else if (command === "generate") {
  const [prompt, count] = args;
  const ctx = await model.createContext({contextSize: 256, threads});
  const seq = ctx.getSequence();
  const ids = model.tokenize(prompt);
  const generated = [];
  for await (const token of seq.evaluate([model.tokens.bos, ...ids], {temperature: 0, yieldEogToken: true})) {
    generated.push(token);
    if (generated.length >= Number(count)) break;
  }
  console.log(JSON.stringify({prompt: ids, generated}));
} else if (command === "tokenize") {
  const strings = JSON.parse(fs.readFileSync(0, "utf8"));
  console.log(JSON.stringify({tokens: strings.map(s => Array.from(model.tokenize(s)))}));
} else {
  console.error(`unknown command ${command}`);
  process.exit(2);
}
await model.dispose();
await llama.dispose();
