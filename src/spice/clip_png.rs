//! Clipboard images with the guest agent (`VD_AGENT_CLIPBOARD_IMAGE_PNG`): a guest's PNG decoded into RGBA8
//! for the host clipboard, and a host image encoded as PNG when the guest asks for it. The `png` crate does
//! the work; this module bounds it: a PNG from the guest is hostile, so its header is checked against
//! [`MAX_SIDE`] and [`MAX_PIXELS_BYTES`] before any pixel buffer exists, and the decoder's own allocations are
//! capped too.
use std::io::Cursor;

use thiserror::Error;

/// Widest or tallest clipboard image taken either way (pixels).
pub(crate) const MAX_SIDE: u32 = 16_384;
/// Largest decoded clipboard image (RGBA8 bytes): 128 MiB, an 8K screenshot (7680×4320) fits.
pub(crate) const MAX_PIXELS_BYTES: usize = 128 << 20;

/// An image as the host clipboard holds it: RGBA8, rows top to bottom, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbaImage {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `width * height * 4` bytes.
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for RgbaImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RgbaImage({}×{}, {} bytes)",
            self.width,
            self.height,
            self.pixels.len()
        )
    }
}

/// Why a clipboard image was not taken.
#[derive(Debug, Error)]
pub(crate) enum ImageError {
    /// Over the caps (or a zero side).
    #[error("{width}×{height} image: over the {MAX_SIDE}-pixel side or {} MiB limit", MAX_PIXELS_BYTES >> 20)]
    TooBig {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
    },
    /// The pixel bytes do not match the size.
    #[error("{got} pixel bytes for a {width}×{height} RGBA image")]
    Length {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Bytes present.
        got: usize,
    },
    /// Not a PNG the decoder accepts.
    #[error("PNG does not decode")]
    Decode(#[source] png::DecodingError),
    /// The encoder failed.
    #[error("PNG encoding failed")]
    Encode(#[source] png::EncodingError),
}

/// RGBA8 bytes of a `width`×`height` image, when within the caps.
fn rgba_len(width: u64, height: u64) -> Result<usize, ImageError> {
    let bytes = width.saturating_mul(height).saturating_mul(4);
    if width == 0
        || height == 0
        || width > u64::from(MAX_SIDE)
        || height > u64::from(MAX_SIDE)
        || bytes > MAX_PIXELS_BYTES as u64
    {
        return Err(ImageError::TooBig { width, height });
    }
    Ok(bytes as usize)
}

/// Decodes a PNG (any colour type and depth, the first frame of an APNG) into RGBA8; refuses one whose
/// header declares more than the caps before allocating its pixels.
pub(crate) fn decode(png_bytes: &[u8]) -> Result<RgbaImage, ImageError> {
    // The decoder's own buffers (rows, the output frame) stay under the cap plus room for a row or two.
    let limits = png::Limits {
        bytes: MAX_PIXELS_BYTES + (4 << 20),
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(png_bytes), limits);
    let (w, h) = {
        let info = decoder.read_header_info().map_err(ImageError::Decode)?;
        (info.width, info.height)
    };
    let len = rgba_len(u64::from(w), u64::from(h))?;
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(ImageError::Decode)?;
    let size = reader.output_buffer_size().ok_or(ImageError::TooBig {
        width: u64::from(w),
        height: u64::from(h),
    })?;
    // After EXPAND + STRIP_16 a pixel is at most 4 bytes: never more than the RGBA size.
    if size > len {
        return Err(ImageError::TooBig {
            width: u64::from(w),
            height: u64::from(h),
        });
    }
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(ImageError::Decode)?;
    buf.truncate(frame.buffer_size());
    let (width, height) = (frame.width, frame.height);
    let pixels = to_rgba(frame.color_type, buf, len);
    if pixels.len() != len || (width, height) != (w, h) {
        return Err(ImageError::Length {
            width,
            height,
            got: pixels.len(),
        });
    }
    Ok(RgbaImage {
        width,
        height,
        pixels,
    })
}

/// 8-bit samples of `color` (as EXPAND leaves them: no palette) → RGBA8.
fn to_rgba(color: png::ColorType, buf: Vec<u8>, len: usize) -> Vec<u8> {
    use png::ColorType as C;
    if color == C::Rgba {
        return buf;
    }
    let mut out = Vec::with_capacity(len);
    match color {
        C::Rgb => buf
            .chunks_exact(3)
            .for_each(|p| out.extend_from_slice(&[p[0], p[1], p[2], 255])),
        C::GrayscaleAlpha => buf
            .chunks_exact(2)
            .for_each(|p| out.extend_from_slice(&[p[0], p[0], p[0], p[1]])),
        C::Grayscale => buf
            .iter()
            .for_each(|&g| out.extend_from_slice(&[g, g, g, 255])),
        // EXPAND turns an indexed image into RGB(A); left as is, the length check refuses it.
        C::Indexed | C::Rgba => return buf,
    }
    out
}

/// Encodes an RGBA8 image as PNG (for the guest's REQUEST); the caps hold here as well.
pub(crate) fn encode(image: &RgbaImage) -> Result<Vec<u8>, ImageError> {
    let len = rgba_len(u64::from(image.width), u64::from(image.height))?;
    if image.pixels.len() != len {
        return Err(ImageError::Length {
            width: image.width,
            height: image.height,
            got: image.pixels.len(),
        });
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    // Fast: the image is made when the guest pastes, and the guest's clipboard waits for it.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(ImageError::Encode)?;
    writer
        .write_image_data(&image.pixels)
        .map_err(ImageError::Encode)?;
    writer.finish().map_err(ImageError::Encode)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32) -> RgbaImage {
        let pixels = (0..w * h * 4).map(|i| (i * 7 % 251) as u8).collect();
        RgbaImage {
            width: w,
            height: h,
            pixels,
        }
    }

    fn png_of(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(color);
        e.set_depth(depth);
        let mut wr = e.write_header().unwrap();
        wr.write_image_data(data).unwrap();
        wr.finish().unwrap();
        out
    }

    #[test]
    fn rgba_round_trips_pixel_exact() {
        for (w, h) in [(1, 1), (3, 5), (64, 17)] {
            let img = image(w, h);
            assert_eq!(decode(&encode(&img).unwrap()).unwrap(), img);
        }
    }

    #[test]
    fn other_colour_types_become_rgba() {
        let rgb = png_of(
            2,
            1,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &[1, 2, 3, 4, 5, 6],
        );
        assert_eq!(decode(&rgb).unwrap().pixels, [1, 2, 3, 255, 4, 5, 6, 255]);
        let gray = png_of(
            2,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            &[9, 10],
        );
        assert_eq!(
            decode(&gray).unwrap().pixels,
            [9, 9, 9, 255, 10, 10, 10, 255]
        );
        let ga = png_of(
            1,
            1,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            &[7, 8],
        );
        assert_eq!(decode(&ga).unwrap().pixels, [7, 7, 7, 8]);
        let deep = png_of(
            1,
            1,
            png::ColorType::Rgba,
            png::BitDepth::Sixteen,
            &[1, 0, 2, 0, 3, 0, 4, 0],
        );
        assert_eq!(decode(&deep).unwrap().pixels, [1, 2, 3, 4]);
    }

    #[test]
    fn corrupt_and_oversized_pngs_are_refused() {
        assert!(matches!(decode(b"not a png"), Err(ImageError::Decode(_))));
        let mut good = encode(&image(8, 8)).unwrap();
        let n = good.len();
        good.truncate(n - 20);
        assert!(decode(&good).is_err(), "truncated");
        // A header that declares 2 GiB of pixels (16384 × 32768): refused before its buffer exists.
        let mut huge = encode(&image(1, 1)).unwrap();
        huge[16..20].copy_from_slice(&16_384u32.to_be_bytes());
        huge[20..24].copy_from_slice(&32_768u32.to_be_bytes());
        let crc = crc32(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(decode(&huge), Err(ImageError::TooBig { .. })));
        assert!(matches!(
            encode(&RgbaImage {
                width: 2,
                height: 2,
                pixels: vec![0; 3]
            }),
            Err(ImageError::Length { .. })
        ));
        assert!(matches!(
            encode(&RgbaImage {
                width: 0,
                height: 2,
                pixels: Vec::new()
            }),
            Err(ImageError::TooBig { .. })
        ));
    }

    /// CRC-32 of a PNG chunk (type + data), to forge a valid IHDR.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
}
