import { Mutex, type Sim } from '../../sim/index.ts';

/**
 * KVM is loaded once per host, so its global locks are one per host: `tdx_lock`
 * ([linux:arch/x86/kvm/vmx/tdx.c]: TDH.MNG.CREATE and the HKID release take it, so the SEAMCALLs
 * that need the module's global locks never answer BUSY) and the ccp driver's `sev_cmd_mutex`
 * (one PSP command at a time, reached from [linux:arch/x86/kvm/svm/sev.c]). Each is kept by the host-wide
 * object it guards (the TDX module, the SNP firmware), made on first use.
 */
const locks = new WeakMap<object, Map<string, Mutex>>();

export function kvmGlobalMutex(sim: Sim, guarded: object, name: 'tdx_lock' | 'sev_cmd_mutex'): Mutex {
  let byName = locks.get(guarded);
  if (byName === undefined) {
    byName = new Map();
    locks.set(guarded, byName);
  }
  let m = byName.get(name);
  if (m === undefined) {
    m = new Mutex(sim, name, 'stall');
    byName.set(name, m);
  }
  return m;
}
