//! Untrusted upload bytes through the whole intake: sniff, header size check, JPEG
//! completeness, decode with limits, EXIF orientation, thumbnail and its encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gallery_fuzz::check(data);
});
