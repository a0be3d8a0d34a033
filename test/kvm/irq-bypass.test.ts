/**
 * IrqBypassManager (model of virt/lib/irqbypass.c): token pairing in either order, the exact
 * stop/add/start and stop/del/start callback order, refusal handling, and registry bookkeeping.
 */
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../src/uapi/errno.js';
import {
  IrqBypassManager, type IrqBypassConsumer, type IrqBypassProducer,
} from '../../src/kvm/irq-bypass.js';

type Log = string[];

function producer(log: Log, token: string, name = 'P', opts: { refuse?: Error } = {}): IrqBypassProducer {
  return {
    token,
    addConsumer: () => { log.push(`${name}.addConsumer`); if (opts.refuse) throw opts.refuse; },
    delConsumer: () => { log.push(`${name}.delConsumer`); },
    stop: () => { log.push(`${name}.stop`); },
    start: () => { log.push(`${name}.start`); },
  };
}

function consumer(log: Log, token: string, name = 'C', opts: { refuse?: Error } = {}): IrqBypassConsumer {
  return {
    token,
    addProducer: () => { log.push(`${name}.addProducer`); if (opts.refuse) throw opts.refuse; },
    delProducer: () => { log.push(`${name}.delProducer`); },
    stop: () => { log.push(`${name}.stop`); },
    start: () => { log.push(`${name}.start`); },
  };
}

const CONNECT = ['P.stop', 'C.stop', 'P.addConsumer', 'C.addProducer', 'C.start', 'P.start'];
const DISCONNECT = ['P.stop', 'C.stop', 'C.delProducer', 'P.delConsumer', 'C.start', 'P.start'];

function errnoOf(fn: () => void): string {
  try { fn(); } catch (e) { expect(e).toBeInstanceOf(KvmError); return (e as KvmError).code; }
  throw new Error('expected a throw');
}

describe('IrqBypassManager pairing', () => {
  it('connects producer-first with stop, add, start order', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p = producer(log, 't1'); const c = consumer(log, 't1');
    m.registerProducer(p);
    expect(log).toEqual([]);
    m.registerConsumer(c);
    expect(log).toEqual(CONNECT);
    expect(m.peerOfProducer(p)).toBe(c);
    expect(m.peerOfConsumer(c)).toBe(p);
    expect(m.connections()).toEqual([{ token: 't1', producer: p, consumer: c }]);
  });

  it('connects consumer-first with the same order', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p = producer(log, 't1'); const c = consumer(log, 't1');
    m.registerConsumer(c);
    expect(log).toEqual([]);
    expect(m.peerOfConsumer(c)).toBeNull();
    m.registerProducer(p);
    expect(log).toEqual(CONNECT);
    expect(m.peerOfConsumer(c)).toBe(p);
    expect(m.size).toEqual({ producers: 1, consumers: 1 });
  });

  it('works with a producer that has no optional callbacks', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p: IrqBypassProducer = { token: 't1' }; const c = consumer(log, 't1');
    m.registerProducer(p);
    m.registerConsumer(c);
    expect(log).toEqual(['C.stop', 'C.addProducer', 'C.start']);
    m.unregisterProducer(p);
    expect(log.slice(3)).toEqual(['C.stop', 'C.delProducer', 'C.start']);
  });

  it('does not pair different tokens', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p = producer(log, 'a'); const c = consumer(log, 'b');
    m.registerProducer(p);
    m.registerConsumer(c);
    expect(log).toEqual([]);
    expect(m.peerOfProducer(p)).toBeNull();
    expect(m.connections()).toEqual([]);
    expect(m.size).toEqual({ producers: 1, consumers: 1 });
  });
});

describe('IrqBypassManager unregister', () => {
  it('producer leaving first disconnects and leaves the consumer registered', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p = producer(log, 't1'); const c = consumer(log, 't1');
    m.registerProducer(p); m.registerConsumer(c);
    log.length = 0;
    m.unregisterProducer(p);
    expect(log).toEqual(DISCONNECT);
    expect(m.size).toEqual({ producers: 0, consumers: 1 });
    expect(m.peerOfConsumer(c)).toBeNull();
    expect(m.peerOfProducer(p)).toBeNull();
    expect(m.connections()).toEqual([]);
  });

  it('consumer leaving first disconnects and leaves the producer registered', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p = producer(log, 't1'); const c = consumer(log, 't1');
    m.registerConsumer(c); m.registerProducer(p);
    log.length = 0;
    m.unregisterConsumer(c);
    expect(log).toEqual(DISCONNECT);
    expect(m.size).toEqual({ producers: 1, consumers: 0 });
    expect(m.peerOfProducer(p)).toBeNull();
  });

  it('re-pairs the remaining side with a newly registered counterpart', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p = producer(log, 't1'); const c1 = consumer(log, 't1', 'C1'); const c2 = consumer(log, 't1');
    m.registerProducer(p); m.registerConsumer(c1); m.unregisterConsumer(c1);
    log.length = 0;
    m.registerConsumer(c2);
    expect(log).toEqual(CONNECT);
    expect(m.peerOfProducer(p)).toBe(c2);
    expect(m.peerOfConsumer(c1)).toBeNull();
  });

  it('ignores unknown objects, including a different object with a registered token', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p = producer(log, 't1'); const c = consumer(log, 't1');
    m.unregisterProducer(producer(log, 'nope'));
    m.unregisterConsumer(consumer(log, 'nope'));
    m.registerProducer(p); m.registerConsumer(c);
    log.length = 0;
    m.unregisterProducer(producer(log, 't1', 'P2'));
    m.unregisterConsumer(consumer(log, 't1', 'C2'));
    expect(log).toEqual([]);
    expect(m.peerOfProducer(p)).toBe(c);
    expect(m.size).toEqual({ producers: 1, consumers: 1 });
  });
});

describe('IrqBypassManager errors', () => {
  it('EINVAL for an empty or non-string token', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    expect(errnoOf(() => m.registerProducer(producer(log, '')))).toBe('EINVAL');
    expect(errnoOf(() => m.registerConsumer(consumer(log, '')))).toBe('EINVAL');
    expect(errnoOf(() => m.registerProducer({ token: 7 } as unknown as IrqBypassProducer))).toBe('EINVAL');
    expect(m.size).toEqual({ producers: 0, consumers: 0 });
  });

  it('EINVAL for a consumer lacking addProducer or delProducer', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const noAdd = { ...consumer(log, 't1'), addProducer: undefined } as unknown as IrqBypassConsumer;
    const noDel = { ...consumer(log, 't1'), delProducer: undefined } as unknown as IrqBypassConsumer;
    m.registerProducer(producer(log, 't1'));
    expect(errnoOf(() => m.registerConsumer(noAdd))).toBe('EINVAL');
    expect(errnoOf(() => m.registerConsumer(noDel))).toBe('EINVAL');
    expect(log).toEqual([]);
    expect(m.size).toEqual({ producers: 1, consumers: 0 });
  });

  it('EBUSY for a duplicate token and for registering the same object twice', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const p = producer(log, 't1'); const c = consumer(log, 't1');
    m.registerProducer(p); m.registerConsumer(c);
    log.length = 0;
    expect(errnoOf(() => m.registerProducer(p))).toBe('EBUSY');
    expect(errnoOf(() => m.registerProducer(producer(log, 't1', 'P2')))).toBe('EBUSY');
    expect(errnoOf(() => m.registerConsumer(c))).toBe('EBUSY');
    expect(errnoOf(() => m.registerConsumer(consumer(log, 't1', 'C2')))).toBe('EBUSY');
    expect(log).toEqual([]);
    expect(m.peerOfProducer(p)).toBe(c);
    expect(m.size).toEqual({ producers: 1, consumers: 1 });
  });

  it('a consumer refusing the producer is not registered; producer add is undone, both restarted', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const refuse = new KvmError('EOPNOTSUPP', 'no posted interrupts');
    const p = producer(log, 't1'); const c = consumer(log, 't1', 'C', { refuse });
    m.registerProducer(p);
    expect(() => m.registerConsumer(c)).toThrow(refuse);
    expect(log).toEqual(['P.stop', 'C.stop', 'P.addConsumer', 'C.addProducer', 'P.delConsumer', 'C.start', 'P.start']);
    expect(m.size).toEqual({ producers: 1, consumers: 0 });
    expect(m.peerOfProducer(p)).toBeNull();
    expect(m.connections()).toEqual([]);
    // The producer is still there and pairs with a willing consumer.
    log.length = 0;
    m.registerConsumer(consumer(log, 't1'));
    expect(log).toEqual(CONNECT);
  });

  it('a producer refusing the consumer is not registered and the consumer is never asked', () => {
    const m = new IrqBypassManager(); const log: Log = [];
    const refuse = new Error('busy vector');
    const p = producer(log, 't1', 'P', { refuse }); const c = consumer(log, 't1');
    m.registerConsumer(c);
    expect(() => m.registerProducer(p)).toThrow(refuse);
    expect(log).toEqual(['P.stop', 'C.stop', 'P.addConsumer', 'C.start', 'P.start']);
    expect(log).not.toContain('C.addProducer');
    expect(m.size).toEqual({ producers: 0, consumers: 1 });
    expect(m.peerOfConsumer(c)).toBeNull();
    // Unregistering the refused producer is then a no-op.
    log.length = 0;
    m.unregisterProducer(p);
    expect(log).toEqual([]);
  });
});
