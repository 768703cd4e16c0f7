//! JPEG completeness: the decoder we use forgives truncation (it fills the missing part
//! with grey), so we walk the marker structure ourselves and require the end-of-image marker.

/// Ok if the segments are well formed and the entropy-coded data ends in EOI.
pub fn check_complete(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err("missing start-of-image marker".into());
    }
    let mut i = 2;
    loop {
        // Find the next marker (fill bytes 0xFF may repeat).
        if i >= bytes.len() || bytes[i] != 0xFF {
            return Err("file ends before the end-of-image marker".into());
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return Err("file ends before the end-of-image marker".into());
        };
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let len = match bytes.get(i..i + 2) {
            Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
            None => return Err("file ends inside a segment header".into()),
        };
        if len < 2 || i + len > bytes.len() {
            return Err("file ends inside a segment".into());
        }
        i += len;
        if marker == 0xDA {
            // Start of scan: skip entropy-coded data up to the next real marker.
            loop {
                match bytes.get(i..i + 2) {
                    None => return Err("file ends inside the image data".into()),
                    Some([0xFF, 0x00]) | Some([0xFF, 0xD0..=0xD7]) => i += 2,
                    Some([0xFF, _]) => break,
                    Some(_) => i += 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let img = image::DynamicImage::new_rgb8(64, 48);
        let mut out = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        out
    }

    #[test]
    fn whole_jpeg_passes_and_truncated_fails() {
        let whole = jpeg();
        assert_eq!(check_complete(&whole), Ok(()));
        for cut in [3, 20, whole.len() / 2, whole.len() - 1] {
            assert!(check_complete(&whole[..cut]).is_err(), "cut at {cut}");
        }
    }
}
