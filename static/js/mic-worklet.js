// AudioWorklet processor: gathers the microphone into fixed-size Float32 chunks
// (1600 samples = 100 ms at the 16 kHz capture context) and posts each to the page,
// with its RMS level for the meter. Runs on the audio rendering thread: no allocation
// per render quantum beyond the chunk handed over.

class MicCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.size = options?.processorOptions?.chunkSamples ?? 1600;
    this.chunk = new Float32Array(this.size);
    this.filled = 0;
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data === "stop") this.running = false;
    };
  }

  process(inputs) {
    const input = inputs[0];
    // No channel while the source is not (yet) producing: keep the node alive.
    const samples = input && input[0];
    if (samples) {
      let offset = 0;
      while (offset < samples.length) {
        const take = Math.min(this.size - this.filled, samples.length - offset);
        this.chunk.set(samples.subarray(offset, offset + take), this.filled);
        this.filled += take;
        offset += take;
        if (this.filled === this.size) this.flush();
      }
    }
    return this.running;
  }

  flush() {
    const chunk = this.chunk;
    let energy = 0;
    for (let i = 0; i < chunk.length; i += 1) energy += chunk[i] * chunk[i];
    this.port.postMessage({ samples: chunk, level: Math.sqrt(energy / chunk.length) }, [
      chunk.buffer,
    ]);
    this.chunk = new Float32Array(this.size);
    this.filled = 0;
  }
}

registerProcessor("mic-capture", MicCapture);
