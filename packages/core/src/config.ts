import { DEFAULT_ENGINE_CONFIG_VALUES } from "./engine.ts";
import { DEFAULT_INSTRUMENTS, type InstrumentSpec } from "./instruments.ts";
import type { AccountGroup, EngineConfig } from "./types.ts";

/** Groups a broker ships: margin call at 100 %, stop-out at 50 % (the common retail levels). */
export const DEFAULT_GROUPS: readonly AccountGroup[] = [
  { name: "standard", marginCallLevelPercent: 100, stopOutLevelPercent: 50 },
  { name: "pro", marginCallLevelPercent: 80, stopOutLevelPercent: 30 },
];

/** The default engine configuration, with any field overridden. */
export function defaultEngineConfig(overrides: Partial<EngineConfig> = {}): EngineConfig {
  return {
    instruments: DEFAULT_INSTRUMENTS as readonly InstrumentSpec[],
    groups: DEFAULT_GROUPS,
    ...DEFAULT_ENGINE_CONFIG_VALUES,
    ...overrides,
  };
}
