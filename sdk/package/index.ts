export type { Compression, PackageOptions, Signer } from './build.js';
export { buildPackage, digestList, signPackage } from './build.js';
export type { PackageLimits } from './format.js';
export { CHAIN_PATH, DIGESTS_PATH, MANIFEST_PATH, PACKAGE_LIMITS, SIGNATURE_PATH } from './format.js';
export type { ReadPackageOptions, SignerInfo, TrustPolicy, VerifiedPackage } from './read.js';
export { readManifestUnverified, readPackage, readPackageFiles } from './read.js';
