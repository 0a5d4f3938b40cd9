/**
 * The environment the gateway process is started with. glibc reads MALLOC_ARENA_MAX once, when
 * the process first allocates, so whoever starts the gateway sets it (bin/run.mjs's re-exec, the
 * supervisor, packaging/isogate.service, the package scripts); the gateway cannot set it itself.
 *
 * Why 2 arenas: the soak's native memory growth (docs/soak.md) was smaller with 2 arenas and V8's
 * concurrent recompilation on (1.67 MiB/min over 12 minutes) than with recompilation off and
 * glibc's default of up to 8 arenas a core (2.30 MiB/min), and turning recompilation off cost the
 * traffic inspector about twice its CPU per frame. Neither is flat yet. An admin's own
 * setting is kept.
 */
export const GATEWAY_MALLOC_ARENA_MAX = '2';

export function gatewayEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.MALLOC_ARENA_MAX ? { ...env } : { ...env, MALLOC_ARENA_MAX: GATEWAY_MALLOC_ARENA_MAX };
}
