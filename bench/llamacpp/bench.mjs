// Times llama.cpp (node-llama-cpp's prebuilt CPU or Vulkan build) on one GGUF file: prompt tokens/s and greedy decode
// tokens/s after one unmeasured warm-up evaluation.
//   node bench.mjs MODEL [vulkan|cpu] [PROMPT_TOKENS] [DECODE_TOKENS]  → one JSON line
// llama.cpp's Vulkan backend skips CPU-type devices (lavapipe) unless GGML_VK_VISIBLE_DEVICES names them:
// device 0 is named here unless the caller set it.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, gpuArg = "vulkan", promptArg = "64", decodeArg = "32"] = process.argv.slice(2);
const gpu = gpuArg === "cpu" ? false : gpuArg;
process.env.GGML_VK_VISIBLE_DEVICES ??= "0";
const llama = await getLlama({gpu, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, gpuLayers: gpu ? "max" : 0});
const nPrompt = Number(promptArg), nDecode = Number(decodeArg);
const ctx = await model.createContext({contextSize: nPrompt + nDecode + 8, batchSize: nPrompt, threads: 2});
const seq = ctx.getSequence();
const prompt = [model.tokens.bos];
for (let i = 1; i < nPrompt; i++) prompt.push(100 + (i * 7919) % 20000);
// Warm-up: the first evaluation compiles pipelines (lavapipe JIT-compiles every shader); not measured.
{
  let w = 0;
  for await (const _ of seq.evaluate(prompt.slice(0, nPrompt), {temperature: 0, yieldEogToken: true})) if (++w > 2) break;
  await seq.clearHistory();
}
let t0 = performance.now(), tPrompt = 0, n = 0;
for await (const token of seq.evaluate(prompt, {temperature: 0, yieldEogToken: true})) {
  if (n === 0) { tPrompt = performance.now() - t0; t0 = performance.now(); }
  if (++n > nDecode) break;
}
const tDecode = performance.now() - t0;
console.log(JSON.stringify({model: modelPath, gpu: gpuArg, devices: llama.gpu ? await llama.getGpuDeviceNames() : ["cpu"],
  promptTokens: nPrompt, promptTokensPerSecond: nPrompt / (tPrompt / 1000), decodeTokens: nDecode, decodeTokensPerSecond: nDecode / (tDecode / 1000)}));
await model.dispose();
await llama.dispose();
