import { SNP_COSTS, type SnpCosts } from './snp_costs.ts';

/**
 * The SEV-SNP side of one host: the costs of the SNP instructions (RMPUPDATE, PVALIDATE) and
 * world switches that every guest on the host pays.
 */
export class SnpFirmware {
  readonly costs: SnpCosts;
  constructor(costs: Partial<SnpCosts> = {}) {
    this.costs = { ...SNP_COSTS, ...costs };
  }
}
