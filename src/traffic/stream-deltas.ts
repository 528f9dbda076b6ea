/**
 * A sample's stream deltas for the traffic history (history.ts), packed in typed arrays.
 */

/** A stream's traffic in one interval, or over the window. */
export interface StreamTraffic {
  bytesIn: number;
  bytesOut: number;
  sessions: number;
}

/**
 * The streams that moved in one interval, packed: their ports ascending, and bytes in, bytes out and
 * sessions per port in one array. 5,000 streams moving in every interval of the window cost 12.6 MB
 * this way (28 bytes an entry), against 46 MB as a Map of objects.
 */
export class StreamDeltas {
  private constructor(
    private readonly ports: Int32Array,
    private readonly values: Float64Array,
  ) {}

  static of(changes: ReadonlyMap<number, StreamTraffic>): StreamDeltas {
    const ports = Int32Array.from(changes.keys()).sort();
    const values = new Float64Array(ports.length * 3);
    ports.forEach((port, i) => {
      const change = changes.get(port)!;
      values[3 * i] = change.bytesIn;
      values[3 * i + 1] = change.bytesOut;
      values[3 * i + 2] = change.sessions;
    });
    return new StreamDeltas(ports, values);
  }

  get size(): number {
    return this.ports.length;
  }

  private indexOf(port: number): number {
    let low = 0;
    let high = this.ports.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const found = this.ports[middle]!;
      if (found === port) return middle;
      if (found < port) low = middle + 1;
      else high = middle - 1;
    }
    return -1;
  }

  get(port: number): StreamTraffic | undefined {
    const i = this.indexOf(port);
    if (i < 0) return undefined;
    return { bytesIn: this.values[3 * i]!, bytesOut: this.values[3 * i + 1]!, sessions: this.values[3 * i + 2]! };
  }

  /** These deltas without those of `gone`'s ports (the same object when it has none of them): one copy, however many go. */
  without(gone: ReadonlySet<number>): StreamDeltas {
    const keep: number[] = [];
    for (let i = 0; i < this.ports.length; i += 1) if (!gone.has(this.ports[i] as number)) keep.push(i);
    if (keep.length === this.ports.length) return this;
    const ports = new Int32Array(keep.length);
    const values = new Float64Array(keep.length * 3);
    keep.forEach((from, to) => {
      ports[to] = this.ports[from] as number;
      values.set(this.values.subarray(3 * from, 3 * from + 3), 3 * to);
    });
    return new StreamDeltas(ports, values);
  }
}

