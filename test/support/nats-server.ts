/** Tests use the same launcher as the demo: a real nats-server per test file. */
export * from '../../examples/nats-server.js';
