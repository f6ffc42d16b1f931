import { afterEach, describe, expect, it } from 'vitest';
import { MessageQueue } from '../src/ipc/message-queue.js';
import { QUEUE_HEADER_SIZE, SLOT_HEADER_SIZE } from '../src/ipc/layout.js';

let queues: MessageQueue[] = [];

/** A producer and a consumer object over the same memory, as the two processes would have. */
function ring(slotCount: number, slotSize: number): { producer: MessageQueue; consumer: MessageQueue; buffer: SharedArrayBuffer } {
  const buffer = new SharedArrayBuffer(QUEUE_HEADER_SIZE + slotCount * slotSize);
  const options = { headerOffset: 0, slotsOffset: QUEUE_HEADER_SIZE, slotCount, slotSize };
  const producer = new MessageQueue(buffer, options);
  producer.init();
  const consumer = new MessageQueue(buffer, options);
  queues.push(producer, consumer);
  return { producer, consumer, buffer };
}

function pattern(length: number, seed: number): Uint8Array {
  const m = new Uint8Array(length);
  for (let i = 0; i < length; i++) m[i] = (seed * 7 + i * 13) & 0xff;
  return m;
}

afterEach(() => {
  for (const q of queues) q.close();
  queues = [];
});

describe('MessageQueue (one process)', () => {
  it('carries empty, single-slot, boundary and multi-slot messages intact', () => {
    const { producer, consumer } = ring(16, 1024);
    const payload = 1024 - SLOT_HEADER_SIZE;
    const sizes = [0, 1, payload - 1, payload, payload + 1, 5000, 3 * payload];
    for (const [i, size] of sizes.entries()) {
      expect(producer.sendSync(pattern(size, i), 1000)).toBe(true);
      const got = consumer.receiveSync(1000);
      expect(got, `size ${size}`).toEqual(pattern(size, i));
    }
    expect(producer.free.value).toBe(16);
    expect(consumer.filled.value).toBe(0);
  });

  it('copies the message on send, so the caller may reuse its buffer', () => {
    const { producer, consumer } = ring(4, 64);
    const m = pattern(100, 1); // two slots
    producer.send(m);
    producer.send(m); // ring full after 4 slots: this one waits in the local FIFO
    expect(producer.backlog).toBe(0);
    producer.send(m); // now there is a backlog
    expect(producer.backlog).toBe(1);
    m.fill(0);
    const got: Uint8Array[] = [];
    consumer.drain((x) => got.push(x.slice()));
    expect(got).toEqual([pattern(100, 1), pattern(100, 1)]);
  });

  it('takes a batch of slots at once, and a handler that throws midway loses nothing after it', () => {
    const { producer, consumer } = ring(16, 64);
    // Single-slot and multi-slot messages, all in the ring before the consumer looks.
    const sizes = [10, 100, 0, 130, 20];
    for (const [i, size] of sizes.entries()) producer.send(pattern(size, i));
    const got: Uint8Array[] = [];
    let calls = 0;
    expect(() => consumer.drain((m) => {
      if (calls++ === 1) throw new Error('handler failed');
      got.push(m.slice());
    })).toThrow('handler failed');
    // The failed message's slots were freed; the rest are still filled, in order.
    expect(consumer.drain((m) => got.push(m.slice()))).toBe(3);
    expect(got).toEqual([pattern(10, 0), pattern(0, 2), pattern(130, 3), pattern(20, 4)]);
    expect(consumer.filled.value).toBe(0);
    expect(producer.free.value).toBe(16);
  });

  it('delivers thousands of random-size messages in order through a small ring with backpressure', async () => {
    const { producer, consumer } = ring(8, 64);
    const count = 2000;
    const sizes = Array.from({ length: count }, (_, i) => (i * 7919) % 700); // up to 13 slots, more than the ring
    const received: Uint8Array[] = [];
    const done = new Promise<void>((resolve) => {
      consumer.onMessage((m) => {
        received.push(m.slice());
        if (received.length === count) resolve();
      });
    });
    consumer.setRef(true);
    for (let i = 0; i < count; i++) producer.send(pattern(sizes[i]!, i));
    expect(producer.backlog).toBeGreaterThan(0);
    await producer.drained();
    await done;
    expect(producer.backlog).toBe(0);
    for (let i = 0; i < count; i++) {
      if (received[i]!.byteLength !== sizes[i] || !received[i]!.every((v, j) => v === pattern(sizes[i]!, i)[j])) {
        throw new Error(`message ${i} differs`);
      }
    }
  });

  it('does not lose an empty message sent while the ring is full', async () => {
    const { producer, consumer } = ring(2, 64);
    producer.send(pattern(10, 0));
    producer.send(pattern(10, 1));
    producer.send(new Uint8Array(0)); // no free slot: must wait in the FIFO, not count as sent
    expect(producer.backlog).toBe(1);
    const got: number[] = [];
    consumer.drain((m) => got.push(m.byteLength));
    await producer.drained();
    consumer.drain((m) => got.push(m.byteLength));
    expect(got).toEqual([10, 10, 0]);
    expect(producer.sendSync(new Uint8Array(0), 100)).toBe(true);
    expect(consumer.receiveSync(100)).toEqual(new Uint8Array(0));
  });

  it('drain delivers every complete message available now', () => {
    const { producer, consumer } = ring(32, 64);
    for (let i = 0; i < 5; i++) producer.send(pattern(10 * i, i));
    const got: number[] = [];
    expect(consumer.drain((m) => got.push(m.byteLength))).toBe(5);
    expect(got).toEqual([0, 10, 20, 30, 40]);
    expect(consumer.drain(() => {})).toBe(0);
  });

  it('sendSync gives up after its timeout when nobody frees slots', () => {
    const { producer } = ring(4, 64);
    const t0 = performance.now();
    expect(producer.sendSync(pattern(500, 0), 30)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
  });

  it('refuses a corrupt slot length without reading past the slot', () => {
    const { producer, consumer, buffer } = ring(4, 64);
    producer.send(pattern(20, 0));
    const view = new DataView(buffer);
    view.setUint32(QUEUE_HEADER_SIZE, 5000, true); // slot 0 claims 5000 bytes in a 56-byte payload
    const seen: Uint8Array[] = [];
    expect(() => consumer.drain((m) => seen.push(m))).toThrow(/corrupt slot: length 5000 exceeds the slot payload of 56 bytes/);
    expect(seen).toEqual([]);
    // The bad slot was released: the ring is usable again.
    expect(consumer.free.value).toBe(4);
    producer.send(pattern(20, 1));
    consumer.drain((m) => seen.push(m.slice()));
    expect(seen).toEqual([pattern(20, 1)]);
  });

  it('refuses a corrupt length in the middle of a multi-slot message', () => {
    const { producer, consumer, buffer } = ring(8, 64);
    producer.send(pattern(150, 2)); // three slots
    new DataView(buffer).setUint32(QUEUE_HEADER_SIZE + 64, 0xffffffff, true);
    const seen: Uint8Array[] = [];
    expect(() => consumer.drain((m) => seen.push(m))).toThrow(/corrupt slot: length 4294967295/);
    expect(seen).toEqual([]);
  });

  it('close resolves drained() for a sender stuck on a full ring, and refuses later sends', async () => {
    const { producer } = ring(2, 64);
    for (let i = 0; i < 5; i++) producer.send(pattern(40, i));
    expect(producer.backlog).toBe(3);
    const drained = producer.drained();
    setTimeout(() => producer.close(), 10);
    await drained;
    expect(() => producer.send(pattern(1, 0))).toThrow(/closed/);
    producer.close();
  });
});
