/**
 * The SDK version apps are built with (`buildSdkVersion` in their manifests). The platform
 * launches an app only if it was built with a compatible SDK: the same major version, and not
 * newer than the platform's.
 */
export const SDK_VERSION = '1.0.0';
