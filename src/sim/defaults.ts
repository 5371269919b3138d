/** The DDS simulator's defaults that the settings table shows too (a module of its own: the table loads no simulator). */

/** Failed probes in a row after which the simulator forgets a node (at 3 s apart: 15 s of silence). */
export const DEFAULT_FORGET_AFTER_FAILED_PROBES = 5;
