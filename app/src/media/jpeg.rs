//! JPEG specifics: completeness (the decoders forgive truncation, filling the missing part
//! with grey, so we walk the marker structure ourselves and require the end-of-image
//! marker) and the thumbnail decoded at reduced size.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};

/// Decode at the smallest DCT scale (1/8, 1/4, 1/2 or 1) that still covers the thumbnail:
/// the 12 MP photo decodes at 500x375 instead of 4000x3000, a sixty-fourth of the pixels
/// and of the memory (`jpeg-decoder`'s `scale`, what libjpeg's shrink-on-load does for
/// vips). The entropy-coded data is still read to its end, so corruption is still found.
/// `None` when this decoder can't read the file (an unusual pixel format, say): the
/// caller decodes it at full size instead.
pub fn scaled_thumbnail(
    bytes: &[u8],
    (width, height): (u32, u32),
) -> Option<(DynamicImage, Orientation)> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().ok()?;
    // CMYK and 16-bit greyscale are rare: the general decoder handles them (checked before
    // decoding, so they are not decoded twice).
    let format = decoder.info()?.pixel_format;
    if !matches!(
        format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    ) {
        return None;
    }
    // The scale is the smallest that covers either requested side: ask for the long side
    // only, or a very wide image would come out a pixel short of the thumbnail's edge.
    let (tw, th) = super::thumbnail_size(width, height);
    let (tw, th) = if width >= height {
        (u16::try_from(tw).ok()?, u16::MAX)
    } else {
        (u16::MAX, u16::try_from(th).ok()?)
    };
    let (w, h) = decoder.scale(tw, th).ok()?;
    let pixels = decoder.decode().ok()?;
    let (w, h) = (u32::from(w), u32::from(h));
    let img = match format {
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, pixels)?)
        }
        _ => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels)?),
    };
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    Some((img, orientation))
}

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

    #[test]
    fn a_large_jpeg_is_decoded_at_the_smallest_scale_that_covers_the_thumbnail() {
        let img = image::RgbImage::from_pixel(1600, 1200, image::Rgb([200, 100, 50]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut bytes)
            .encode_image(&img)
            .expect("encode");
        let (decoded, orientation) =
            scaled_thumbnail(&bytes, (1600, 1200)).expect("read by the scaling decoder");
        // 400x300 is wanted: a quarter of each side covers it exactly.
        assert_eq!((decoded.width(), decoded.height()), (400, 300));
        assert_eq!(orientation, Orientation::NoTransforms);
    }

    #[test]
    fn a_very_wide_jpeg_is_scaled_by_its_long_side() {
        let img = image::RgbImage::from_pixel(3190, 24, image::Rgb([10, 20, 30]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut bytes)
            .encode_image(&img)
            .expect("encode");
        let (decoded, _) = scaled_thumbnail(&bytes, (3190, 24)).expect("read");
        // An eighth (399 x 3) would cover the short side's 3 pixels but not the 400-pixel
        // edge: a quarter it is.
        assert_eq!((decoded.width(), decoded.height()), (798, 6));
    }

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
