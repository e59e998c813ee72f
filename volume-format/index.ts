/** Pure encode/decode/validate of format v1 on-disk structures (SPEC.md). No I/O here. */
export * from './backup.js';
export * from './constants.js';
export * from './errors.js';
export * from './features.js';
export * from './header.js';
export * from './header-copies.js';
export * from './keyslot.js';
export * from './layout.js';
export * from './secret.js';
export * from './reencrypt-state.js';
export * from './resize.js';
