/** Tests make their certificates the way the security suite does (bench/security/). */
export * from '../../examples/pki.js';
