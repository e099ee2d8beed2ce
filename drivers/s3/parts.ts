// S3's multipart limits, apart from the writer so that the config check can
// use them without loading the AWS SDK.

/** The smallest part S3 accepts, but for the last one. */
export const MIN_PART = 5 << 20;
