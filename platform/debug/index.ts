export { type Inspectable, InspectorGateway, type InspectorTarget, inspectorPath } from './inspector.js';
export { DEBUG_DEFAULTS, type DebugHost, DebugService, type DebugServiceOptions, type ListenOptions } from './service.js';
export { DeveloperTokens, MAX_DEVELOPERS, TOKEN_PREFIX } from './tokens.js';
