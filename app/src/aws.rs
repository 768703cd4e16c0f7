//! The AWS SDK configuration shared by S3 storage and Secrets Manager: region (flag,
//! then the SDK's chain, then us-east-1) and credentials from the SDK's usual chain.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::S3Options;

pub async fn sdk_config(options: &S3Options) -> (SdkConfig, Region) {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let region = shared
        .region()
        .cloned()
        .unwrap_or_else(|| Region::new("us-east-1"));
    (shared, region)
}
