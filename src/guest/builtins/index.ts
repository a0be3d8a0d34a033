/** Names of the built-in guest programs (each is src/guest/builtins/<name>.ts). */
export const BUILTIN_GUESTS = ['irq-echo', 'ipi-pingpong', 'idle', 'its-lpi', 'irq-sink'] as const;
export type BuiltinGuest = (typeof BUILTIN_GUESTS)[number];
