/**
 * The GICv2 aliased group-1 registers (GICC_AIAR, GICC_AEOIR, GICC_AHPPIR) are the same CPU
 * interface as GICC_IAR/EOIR and the GICv3 ICC_* registers (spec §5.3): acknowledging through
 * AIAR counts an acknowledgement, an EOI through AEOIR counts an EOI, and writes of the special
 * INTIDs 1020-1023 are ignored by either EOI register (GICv2 architecture, GICC_EOIR/AEOIR).
 */
import { afterEach, expect, it } from 'vitest';
import { guestFromFunction, type GuestCpu } from '../../src/index.js';
import { VmTracker, build, runAll } from '../helpers.js';

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

const aliasGuest = guestFromFunction((cpu: GuestCpu, a: { spi: number }) => {
  const AIAR = 0x20;
  const AEOIR = 0x24;
  const AHPPIR = 0x28;
  const EOIR = 0x10;
  cpu.initCpuInterface();
  cpu.driver.setPriority(a.spi, 0x80);
  cpu.driver.setGroup(a.spi, 1);
  cpu.driver.route(a.spi, 0);
  cpu.driver.enable(a.spi);
  cpu.driver.enableDistributor();
  cpu.disableIrqs();
  cpu.driver.setPending(a.spi); // a trapped write: the exit and entry load it into an LR
  const hppi = cpu.mmioRead(cpu.giccBase + AHPPIR);
  const first = cpu.mmioRead(cpu.giccBase + AIAR);
  const rprActive = cpu.rpr();
  cpu.mmioWrite(cpu.giccBase + AEOIR, 1023);
  cpu.mmioWrite(cpu.giccBase + EOIR, 1022);
  const rprAfterSpecial = cpu.rpr();
  cpu.mmioWrite(cpu.giccBase + AEOIR, first);
  const second = cpu.mmioRead(cpu.giccBase + AIAR);
  return { hppi, first, rprActive, rprAfterSpecial, rpr: cpu.rpr(), second };
});

it.each(['mainline', 'classic'] as const)('GICv2 AIAR/AEOIR (%s): counted like IAR/EOIR; special INTIDs are not EOIs', async (lrPolicy) => {
  const spi = 40;
  const { vm } = tracker.track(build(2, { vcpus: 1, guest: aliasGuest, args: { spi }, nrIrqs: 64, vm: { lrPolicy } }));
  const [r] = await runAll(vm, 20_000, 'the alias guest');
  expect(r!.result).toEqual({ hppi: spi, first: spi, rprActive: 0x80, rprAfterSpecial: 0x80, rpr: 0xff, second: 1023 });
  const s = vm.vcpus[0]!.stats();
  expect({ acks: s.acks, eois: s.eois, spuriousAcks: s.spuriousAcks }).toEqual({ acks: 1, eois: 1, spuriousAcks: 1 });
});
