//! Writes the hand-made seeds of the intake corpus: small valid images of every accepted
//! type and colour layout, small crops of the test photos, and malformed inputs that
//! stop at each check. Run once from `fuzz/` (stable Rust is enough):
//!
//! ```sh
//! cargo run --release --example make_seeds -- corpus/intake
//! ```
//!
//! The fuzz campaign grows the corpus from these; `cargo fuzz cmin` then keeps only
//! inputs that add coverage, so some of these may be merged away.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{
    Delay, DynamicImage, Frame, ImageBuffer, ImageEncoder, ImageFormat, Luma, LumaA, Rgb, Rgba,
};

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format)
        .expect("encode");
    out
}

fn gradient(w: u32, h: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

/// A JPEG with an APP1 EXIF segment whose only tag is Orientation = `orientation`.
fn jpeg_with_orientation(w: u32, h: u32, orientation: u16) -> Vec<u8> {
    let plain = encode(&DynamicImage::ImageRgb8(gradient(w, h)), ImageFormat::Jpeg);
    // Big-endian TIFF header, one IFD with one SHORT entry (0x0112), no next IFD.
    let mut tiff = vec![b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1];
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = plain[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A PNG signature and IHDR (correct CRC) claiming `w`x`h`, and nothing else.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The photo at `path` scaled so its long edge is `edge`, in its own format.
fn shrink(path: &Path, edge: u32, format: ImageFormat) -> Result<Vec<u8>, String> {
    let img = image::open(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(encode(&img.thumbnail(edge, edge), format))
}

/// Encoding the small in-memory images above can't fail (`expect` there marks that
/// invariant); reading the test photos and writing the corpus can, and say which file.
fn main() -> Result<(), String> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "corpus/intake".into());
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/photos");
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    // JPEG: plain, each EXIF orientation that swaps or flips, greyscale, a small photo.
    let rgb = DynamicImage::ImageRgb8(gradient(24, 16));
    seeds.push(("jpeg-rgb.jpg", encode(&rgb, ImageFormat::Jpeg)));
    for o in [2u16, 3, 5, 6, 8] {
        let name: &'static str = Box::leak(format!("jpeg-exif-orient{o}.jpg").into_boxed_str());
        seeds.push((name, jpeg_with_orientation(20, 12, o)));
    }
    seeds.push((
        "jpeg-gray.jpg",
        encode(
            &DynamicImage::ImageLuma8(ImageBuffer::from_fn(16, 16, |x, y| Luma([(x * y) as u8]))),
            ImageFormat::Jpeg,
        ),
    ));
    let mut q = Vec::new();
    JpegEncoder::new_with_quality(&mut q, 30)
        .encode_image(&gradient(9, 7))
        .expect("jpeg");
    seeds.push(("jpeg-odd-size.jpg", q));
    seeds.push((
        "photo-rocket-64.jpg",
        shrink(&photos.join("rocket.jpg"), 64, ImageFormat::Jpeg)?,
    ));

    // PNG: RGB, RGBA (transparent, so a PNG thumbnail), 16-bit, grey, grey+alpha, photos.
    seeds.push(("png-rgb.png", encode(&rgb, ImageFormat::Png)));
    let rgba = ImageBuffer::from_fn(16, 16, |x, y| {
        Rgba([x as u8 * 16, y as u8 * 16, 0, (x * y) as u8])
    });
    seeds.push((
        "png-rgba.png",
        encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
    ));
    let rgb16 = ImageBuffer::from_fn(8, 8, |x, y| Rgb([x as u16 * 8000, y as u16 * 8000, 1]));
    seeds.push((
        "png-rgb16.png",
        encode(&DynamicImage::ImageRgb16(rgb16), ImageFormat::Png),
    ));
    let la = ImageBuffer::from_fn(8, 8, |x, y| LumaA([(x * 30) as u8, (y * 30) as u8]));
    seeds.push((
        "png-la.png",
        encode(&DynamicImage::ImageLumaA8(la), ImageFormat::Png),
    ));
    let mut tall = Vec::new();
    PngEncoder::new(&mut tall)
        .write_image(&[0u8; 900], 1, 900, image::ExtendedColorType::L8)
        .expect("png");
    seeds.push(("png-1x900.png", tall));
    seeds.push((
        "photo-astronaut-alpha-48.png",
        shrink(&photos.join("astronaut-alpha.png"), 48, ImageFormat::Png)?,
    ));
    seeds.push((
        "photo-camera-48.png",
        shrink(&photos.join("camera.png"), 48, ImageFormat::Png)?,
    ));

    // GIF: one frame, and an animation of three frames (only the first is thumbnailed).
    seeds.push(("gif-still.gif", encode(&rgb, ImageFormat::Gif)));
    let mut anim = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut anim);
        enc.set_repeat(Repeat::Infinite).expect("gif");
        for i in 0..3u8 {
            let f = ImageBuffer::from_fn(12, 10, |x, y| {
                Rgba([i * 80, x as u8 * 20, y as u8 * 20, 255])
            });
            enc.encode_frame(Frame::from_parts(
                f,
                i.into(),
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .expect("gif frame");
        }
    }
    seeds.push(("gif-animated.gif", anim));

    // WebP: lossless (what `image` encodes) in RGB and RGBA; the lossy photo is copied whole below.
    let mut webp = Vec::new();
    WebPEncoder::new_lossless(&mut webp)
        .write_image(
            gradient(16, 12).as_raw(),
            16,
            12,
            image::ExtendedColorType::Rgb8,
        )
        .expect("webp");
    seeds.push(("webp-lossless-rgb.webp", webp));
    let mut webpa = Vec::new();
    let rgba = ImageBuffer::from_fn(10, 10, |x, y| {
        Rgba([x as u8 * 25, y as u8 * 25, 128, (x * 25) as u8])
    });
    WebPEncoder::new_lossless(&mut webpa)
        .write_image(rgba.as_raw(), 10, 10, image::ExtendedColorType::Rgba8)
        .expect("webp");
    seeds.push(("webp-lossless-rgba.webp", webpa));

    // Small real photos, whole: EXIF-rotated JPEG and lossy WebP.
    for name in ["chelsea-exif-rot6.jpg", "rocket.webp"] {
        let name: &'static str = Box::leak(format!("photo-{name}").into_boxed_str());
        let src = photos.join(&name["photo-".len()..]);
        let bytes = std::fs::read(&src).map_err(|e| format!("reading {}: {e}", src.display()))?;
        seeds.push((name, bytes));
    }

    // Malformed: each check on the way in should turn these away cleanly.
    let jpeg = encode(&rgb, ImageFormat::Jpeg);
    seeds.push(("bad-jpeg-truncated.jpg", jpeg[..jpeg.len() / 2].to_vec()));
    seeds.push(("bad-jpeg-no-eoi.jpg", jpeg[..jpeg.len() - 2].to_vec()));
    seeds.push(("bad-jpeg-soi-only.jpg", vec![0xFF, 0xD8, 0xFF]));
    seeds.push(("bad-png-huge-header.png", png_header_only(100_000, 100_000)));
    seeds.push(("bad-png-zero-width.png", png_header_only(0, 10)));
    seeds.push(("bad-png-header-only.png", png_header_only(10, 10)));
    let png = encode(&rgb, ImageFormat::Png);
    seeds.push(("bad-png-truncated.png", png[..png.len() - 20].to_vec()));
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0]); // 65535x65535 screen, no frames
    seeds.push(("bad-gif-huge-screen.gif", gif));
    seeds.push(("bad-webp-riff-only.webp", b"RIFF\x04\0\0\0WEBP".to_vec()));
    seeds.push(("bad-text.txt", b"hello, I am text".to_vec()));

    let mut total = 0;
    for (name, bytes) in &seeds {
        total += bytes.len();
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    eprintln!(
        "{} seeds, {} bytes, in {}",
        seeds.len(),
        total,
        out.display()
    );
    Ok(())
}
