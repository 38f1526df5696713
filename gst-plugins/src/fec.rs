//! Reed–Solomon erasure coding over GF(2^8), bit-compatible with nanors (the library
//! moonlight-common-c decodes with).
//!
//! Implements `docs/PROTOCOL.md` §4.5 (video FEC: systematic Cauchy matrix
//! `M[j][i] = inv((p + i) XOR j)` over the field with polynomial 0x11D) and the fixed 2×4 audio
//! matrix of §5.4 ([`AUDIO_PARITY_MATRIX`]).
//!
//! Encoding is `parity_j = XOR_i M[j][i] · data_i`, byte column by byte column. The hot loop runs
//! on the best kernel the CPU offers, picked once at run time ([`Kernel::detect`]):
//!
//! * AVX-512 + GFNI: one `vgf2p8affineqb` per 64 bytes and coefficient. A multiplication by a
//!   constant is linear over GF(2), so it is an 8×8 bit matrix, which the affine instruction
//!   applies whatever the field polynomial is (the `gf2p8mulb` instruction is fixed to 0x11B and
//!   cannot be used).
//! * AVX2 + GFNI: the same on 32 bytes.
//! * AVX2: split-nibble tables with `vpshufb`, 32 bytes at a time.
//! * Scalar: a 256-byte product row per coefficient.
//!
//! Building an encoder is cheap (a few µs), but the packetizers still keep them in an
//! [`EncoderCache`] keyed by (data, parity), so steady-state encoding allocates nothing.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::OnceLock;

/// Largest total shard count (data + parity) of one block, nanors' `DATA_SHARDS_MAX`.
pub const MAX_TOTAL_SHARDS: usize = 255;

/// The fixed audio parity matrix (2 rows × 4 columns, row-major) that moonlight-common-c and
/// Sunshine copy over nanors' (4,2) matrix (`docs/PROTOCOL.md` §5.4).
pub const AUDIO_PARITY_MATRIX: [u8; 8] = [0x77, 0x40, 0x38, 0x0e, 0xc7, 0xa7, 0x0d, 0x6c];

/// Errors from building or running a Reed–Solomon code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FecError {
    /// The shard counts are not usable: zero data shards, or data + parity above 255.
    #[error("invalid shard counts: {data} data + {parity} parity")]
    InvalidShardCount {
        /// Requested data shards.
        data: usize,
        /// Requested parity shards.
        parity: usize,
    },
    /// A custom parity matrix does not have `data × parity` entries.
    #[error("parity matrix has the wrong size")]
    MatrixSize,
    /// The caller passed a different number of shards than the code has.
    #[error("wrong number of shards")]
    ShardCount,
    /// The shards do not all have the same length.
    #[error("shards differ in length")]
    ShardLength,
    /// A strided buffer is too small for the shards it should hold.
    #[error("buffer too small for the shard layout")]
    BufferTooSmall,
    /// Fewer shards survived than there are data shards: nothing can be recovered.
    #[error("too few shards to reconstruct")]
    TooFewShards,
    /// The decoding matrix was singular (cannot happen for a Cauchy code).
    #[error("singular decoding matrix")]
    SingularMatrix,
}

// ---------------------------------------------------------------------------------------------
// GF(2^8) arithmetic, polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D), generator 2.

const fn build_exp_log() -> ([u8; 512], [u8; 256]) {
    let mut exp = [0u8; 512];
    let mut log = [0u8; 256];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        exp[i + 255] = x as u8;
        log[x as usize] = i as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= 0x11d;
        }
        i += 1;
    }
    // exp[510], exp[511] are never read by `mul` (log a + log b <= 508).
    (exp, log)
}

const EXP_LOG: ([u8; 512], [u8; 256]) = build_exp_log();
static EXP: [u8; 512] = EXP_LOG.0;
static LOG: [u8; 256] = EXP_LOG.1;

/// Multiplies two field elements.
#[inline]
pub fn gf_mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
}

/// Multiplicative inverse; `gf_inv(0)` is defined as 0 (never used by the codes here).
#[inline]
pub fn gf_inv(a: u8) -> u8 {
    if a == 0 {
        return 0;
    }
    EXP[255 - LOG[a as usize] as usize]
}

/// Full 64 KiB product table, `MUL[a][b] = a·b`, for the scalar kernel.
fn mul_table() -> &'static [[u8; 256]; 256] {
    static TABLE: OnceLock<Box<[[u8; 256]; 256]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([[0u8; 256]; 256]);
        for (a, row) in t.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                *v = gf_mul(a as u8, b as u8);
            }
        }
        t
    })
}

/// The GF(2)-linear map `x -> c·x` as the 8×8 bit matrix `vgf2p8affineqb` expects: byte
/// `7 - r` of the result holds the row producing output bit `r`.
fn affine_matrix(c: u8) -> u64 {
    let mut m = 0u64;
    for r in 0..8 {
        let mut row = 0u8;
        for k in 0..8 {
            if gf_mul(c, 1 << k) & (1 << r) != 0 {
                row |= 1 << k;
            }
        }
        m |= u64::from(row) << (8 * (7 - r));
    }
    m
}

/// Split-nibble product tables: `[c·x for x in 0..16] ++ [c·(x << 4) for x in 0..16]`.
fn nibble_tables(c: u8) -> [u8; 32] {
    let mut t = [0u8; 32];
    for x in 0..16u8 {
        t[x as usize] = gf_mul(c, x);
        t[16 + x as usize] = gf_mul(c, x << 4);
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Kernels.

/// A GF(2^8) multiply-accumulate implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable table lookups, one byte at a time.
    Scalar,
    /// AVX2 `vpshufb` split-nibble tables, 32 bytes at a time.
    Avx2,
    /// AVX2 + GFNI affine transform, 32 bytes at a time.
    Avx2Gfni,
    /// AVX-512BW + GFNI affine transform, 64 bytes at a time with masked tails.
    Avx512Gfni,
}

impl Kernel {
    /// Every kernel, slowest first.
    pub const ALL: [Kernel; 4] = [
        Kernel::Scalar,
        Kernel::Avx2,
        Kernel::Avx2Gfni,
        Kernel::Avx512Gfni,
    ];

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Gfni => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("gfni")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Gfni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("gfni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest kernel this CPU can run, detected once.
    pub fn detect() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            Kernel::ALL
                .into_iter()
                .rev()
                .find(|k| k.is_available())
                .unwrap_or(Kernel::Scalar)
        })
    }
}

/// A `rows × cols` coefficient matrix with the per-kernel forms of each coefficient.
#[derive(Debug, Clone)]
struct CoeffMatrix {
    rows: usize,
    cols: usize,
    /// Row-major coefficients, `[r * cols + i]`.
    coeffs: Vec<u8>,
    /// Affine matrices, column-major (`[i * rows + r]`) so a group of rows is contiguous.
    affine: Vec<u64>,
    /// Nibble tables, column-major like `affine`.
    nibbles: Vec<[u8; 32]>,
}

impl CoeffMatrix {
    fn new(rows: usize, cols: usize, coeffs: Vec<u8>) -> Self {
        debug_assert_eq!(coeffs.len(), rows * cols);
        let mut affine = vec![0u64; rows * cols];
        let mut nibbles = vec![[0u8; 32]; rows * cols];
        for r in 0..rows {
            for i in 0..cols {
                let c = coeffs[r * cols + i];
                affine[i * rows + r] = affine_matrix(c);
                nibbles[i * rows + r] = nibble_tables(c);
            }
        }
        Self {
            rows,
            cols,
            coeffs,
            affine,
            nibbles,
        }
    }

    /// `dst[r] = XOR_i coeffs[r][i] · src[i]` over `len` bytes.
    ///
    /// # Safety
    /// `src` holds `cols` pointers and `dst` holds `rows` pointers, each valid for `len` bytes
    /// (reads for `src`, writes for `dst`); no `dst` range overlaps any other range.
    unsafe fn apply(&self, kernel: Kernel, src: &[*const u8], dst: &[*mut u8], len: usize) {
        debug_assert_eq!(src.len(), self.cols);
        debug_assert_eq!(dst.len(), self.rows);
        let kernel = if kernel.is_available() {
            kernel
        } else {
            Kernel::Scalar
        };
        match kernel {
            // SAFETY: forwarded caller contract.
            Kernel::Scalar => unsafe { scalar::apply(self, src, dst, 0, len) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: forwarded caller contract; the CPU features were checked just above.
            Kernel::Avx2 => unsafe { x86::apply_avx2(self, src, dst, len) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2Gfni => unsafe { x86::apply_avx2_gfni(self, src, dst, len) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx512Gfni => unsafe { x86::apply_avx512_gfni(self, src, dst, len) },
            #[cfg(not(target_arch = "x86_64"))]
            // SAFETY: forwarded caller contract.
            _ => unsafe { scalar::apply(self, src, dst, 0, len) },
        }
    }
}

mod scalar {
    use super::{CoeffMatrix, mul_table};

    /// Scalar kernel over the byte range `start..len` of every shard.
    ///
    /// # Safety
    /// As [`CoeffMatrix::apply`].
    pub(super) unsafe fn apply(
        m: &CoeffMatrix,
        src: &[*const u8],
        dst: &[*mut u8],
        start: usize,
        len: usize,
    ) {
        if start >= len {
            return;
        }
        let n = len - start;
        let table = mul_table();
        for (r, &d) in dst.iter().enumerate() {
            // SAFETY: caller guarantees `d` is writable for `len` bytes and unaliased.
            let out = unsafe { std::slice::from_raw_parts_mut(d.add(start), n) };
            out.fill(0);
            for (i, &s) in src.iter().enumerate() {
                // SAFETY: caller guarantees `s` is readable for `len` bytes.
                let input = unsafe { std::slice::from_raw_parts(s.add(start), n) };
                let c = m.coeffs[r * m.cols + i];
                match c {
                    0 => {}
                    1 => out.iter_mut().zip(input).for_each(|(o, x)| *o ^= x),
                    _ => {
                        let row = &table[c as usize];
                        out.iter_mut()
                            .zip(input)
                            .for_each(|(o, &x)| *o ^= row[x as usize]);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{CoeffMatrix, scalar};

    /// Runs `$f::<N>` for each group of up to `$max` consecutive rows.
    macro_rules! for_row_groups {
        ($m:expr, $max:expr, |$r0:ident, $n:ident| $call:expr) => {{
            let mut $r0 = 0;
            while $r0 < $m.rows {
                let $n = ($m.rows - $r0).min($max);
                $call;
                $r0 += $n;
            }
        }};
    }

    /// # Safety
    /// As [`CoeffMatrix::apply`], and the CPU supports AVX-512F, AVX-512BW and GFNI.
    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    pub(super) unsafe fn apply_avx512_gfni(
        m: &CoeffMatrix,
        src: &[*const u8],
        dst: &[*mut u8],
        len: usize,
    ) {
        for_row_groups!(m, 8, |r0, n| {
            // SAFETY: forwarded caller contract.
            unsafe {
                match n {
                    8 => group_avx512::<8>(m, src, dst, len, r0),
                    7 => group_avx512::<7>(m, src, dst, len, r0),
                    6 => group_avx512::<6>(m, src, dst, len, r0),
                    5 => group_avx512::<5>(m, src, dst, len, r0),
                    4 => group_avx512::<4>(m, src, dst, len, r0),
                    3 => group_avx512::<3>(m, src, dst, len, r0),
                    2 => group_avx512::<2>(m, src, dst, len, r0),
                    _ => group_avx512::<1>(m, src, dst, len, r0),
                }
            }
        });
    }

    #[target_feature(enable = "avx512f,avx512bw,gfni")]
    #[inline]
    unsafe fn group_avx512<const N: usize>(
        m: &CoeffMatrix,
        src: &[*const u8],
        dst: &[*mut u8],
        len: usize,
        r0: usize,
    ) {
        let mut off = 0;
        while off < len {
            let rem = len - off;
            let mask: u64 = if rem >= 64 { !0 } else { (1u64 << rem) - 1 };
            let mut acc = [_mm512_setzero_si512(); N];
            for (&s, mats) in src.iter().zip(m.affine.chunks_exact(m.rows)) {
                let mats: &[u64; N] = match mats.get(r0..r0 + N).and_then(|s| s.try_into().ok()) {
                    Some(x) => x,
                    None => return,
                };
                // SAFETY: `s + off .. s + off + popcount(mask)` lies within the `len` readable
                // bytes; masked-off lanes are not accessed.
                let x = unsafe { _mm512_maskz_loadu_epi8(mask, s.add(off).cast()) };
                for r in 0..N {
                    let a = _mm512_set1_epi64(mats[r] as i64);
                    acc[r] = _mm512_xor_si512(acc[r], _mm512_gf2p8affine_epi64_epi8::<0>(x, a));
                }
            }
            for (r, a) in acc.iter().enumerate() {
                // SAFETY: as the load above, for the writable destination row.
                unsafe { _mm512_mask_storeu_epi8(dst[r0 + r].add(off).cast(), mask, *a) };
            }
            off += 64;
        }
    }

    /// # Safety
    /// As [`CoeffMatrix::apply`], and the CPU supports AVX2 and GFNI.
    #[target_feature(enable = "avx2,gfni")]
    pub(super) unsafe fn apply_avx2_gfni(
        m: &CoeffMatrix,
        src: &[*const u8],
        dst: &[*mut u8],
        len: usize,
    ) {
        let body = len - len % 32;
        for_row_groups!(m, 6, |r0, n| {
            // SAFETY: forwarded caller contract.
            unsafe {
                match n {
                    6 => group_avx2_gfni::<6>(m, src, dst, body, r0),
                    5 => group_avx2_gfni::<5>(m, src, dst, body, r0),
                    4 => group_avx2_gfni::<4>(m, src, dst, body, r0),
                    3 => group_avx2_gfni::<3>(m, src, dst, body, r0),
                    2 => group_avx2_gfni::<2>(m, src, dst, body, r0),
                    _ => group_avx2_gfni::<1>(m, src, dst, body, r0),
                }
            }
        });
        // SAFETY: forwarded caller contract.
        unsafe { scalar::apply(m, src, dst, body, len) };
    }

    #[target_feature(enable = "avx2,gfni")]
    #[inline]
    unsafe fn group_avx2_gfni<const N: usize>(
        m: &CoeffMatrix,
        src: &[*const u8],
        dst: &[*mut u8],
        body: usize,
        r0: usize,
    ) {
        let mut off = 0;
        while off < body {
            let mut acc = [_mm256_setzero_si256(); N];
            for (&s, mats) in src.iter().zip(m.affine.chunks_exact(m.rows)) {
                let mats: &[u64; N] = match mats.get(r0..r0 + N).and_then(|s| s.try_into().ok()) {
                    Some(x) => x,
                    None => return,
                };
                // SAFETY: `off + 32 <= body <= len`.
                let x = unsafe { _mm256_loadu_si256(s.add(off).cast()) };
                for r in 0..N {
                    let a = _mm256_set1_epi64x(mats[r] as i64);
                    acc[r] = _mm256_xor_si256(acc[r], _mm256_gf2p8affine_epi64_epi8::<0>(x, a));
                }
            }
            for (r, a) in acc.iter().enumerate() {
                // SAFETY: `off + 32 <= body <= len`.
                unsafe { _mm256_storeu_si256(dst[r0 + r].add(off).cast(), *a) };
            }
            off += 32;
        }
    }

    /// # Safety
    /// As [`CoeffMatrix::apply`], and the CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn apply_avx2(
        m: &CoeffMatrix,
        src: &[*const u8],
        dst: &[*mut u8],
        len: usize,
    ) {
        let body = len - len % 32;
        for_row_groups!(m, 4, |r0, n| {
            // SAFETY: forwarded caller contract.
            unsafe {
                match n {
                    4 => group_avx2::<4>(m, src, dst, body, r0),
                    3 => group_avx2::<3>(m, src, dst, body, r0),
                    2 => group_avx2::<2>(m, src, dst, body, r0),
                    _ => group_avx2::<1>(m, src, dst, body, r0),
                }
            }
        });
        // SAFETY: forwarded caller contract.
        unsafe { scalar::apply(m, src, dst, body, len) };
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn group_avx2<const N: usize>(
        m: &CoeffMatrix,
        src: &[*const u8],
        dst: &[*mut u8],
        body: usize,
        r0: usize,
    ) {
        let low = _mm256_set1_epi8(0x0f);
        let mut off = 0;
        while off < body {
            let mut acc = [_mm256_setzero_si256(); N];
            for (&s, tabs) in src.iter().zip(m.nibbles.chunks_exact(m.rows)) {
                let tabs: &[[u8; 32]; N] =
                    match tabs.get(r0..r0 + N).and_then(|s| s.try_into().ok()) {
                        Some(x) => x,
                        None => return,
                    };
                // SAFETY: `off + 32 <= body <= len`.
                let x = unsafe { _mm256_loadu_si256(s.add(off).cast()) };
                let lo = _mm256_and_si256(x, low);
                let hi = _mm256_and_si256(_mm256_srli_epi64::<4>(x), low);
                for r in 0..N {
                    // SAFETY: each table is 32 readable bytes.
                    let (tl, th) = unsafe {
                        (
                            _mm256_broadcastsi128_si256(_mm_loadu_si128(tabs[r].as_ptr().cast())),
                            _mm256_broadcastsi128_si256(_mm_loadu_si128(
                                tabs[r].as_ptr().add(16).cast(),
                            )),
                        )
                    };
                    let p =
                        _mm256_xor_si256(_mm256_shuffle_epi8(tl, lo), _mm256_shuffle_epi8(th, hi));
                    acc[r] = _mm256_xor_si256(acc[r], p);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                // SAFETY: `off + 32 <= body <= len`.
                unsafe { _mm256_storeu_si256(dst[r0 + r].add(off).cast(), *a) };
            }
            off += 32;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Codes.

/// A systematic Reed–Solomon code with `data` data shards and `parity` parity shards.
#[derive(Debug, Clone)]
pub struct ReedSolomon {
    data: usize,
    parity: usize,
    matrix: CoeffMatrix,
}

impl ReedSolomon {
    /// The nanors-compatible Cauchy code (`docs/PROTOCOL.md` §4.5), used for video.
    pub fn new(data: usize, parity: usize) -> Result<Self, FecError> {
        Self::check_counts(data, parity)?;
        let mut coeffs = Vec::with_capacity(data * parity);
        for j in 0..parity {
            for i in 0..data {
                // (p + i) < 256 because data + parity <= 255, and (p + i) ^ j != 0 since j < p.
                coeffs.push(gf_inv(((parity + i) ^ j) as u8));
            }
        }
        Ok(Self {
            data,
            parity,
            matrix: CoeffMatrix::new(parity, data, coeffs),
        })
    }

    /// A code with an explicit row-major `parity × data` matrix, e.g. [`AUDIO_PARITY_MATRIX`].
    pub fn with_parity_matrix(data: usize, parity: usize, matrix: &[u8]) -> Result<Self, FecError> {
        Self::check_counts(data, parity)?;
        if matrix.len() != data * parity {
            return Err(FecError::MatrixSize);
        }
        Ok(Self {
            data,
            parity,
            matrix: CoeffMatrix::new(parity, data, matrix.to_vec()),
        })
    }

    /// The audio code: 4 data shards, 2 parity shards, [`AUDIO_PARITY_MATRIX`].
    pub fn audio() -> Self {
        Self {
            data: 4,
            parity: 2,
            matrix: CoeffMatrix::new(2, 4, AUDIO_PARITY_MATRIX.to_vec()),
        }
    }

    fn check_counts(data: usize, parity: usize) -> Result<(), FecError> {
        if data == 0 || data + parity > MAX_TOTAL_SHARDS {
            return Err(FecError::InvalidShardCount { data, parity });
        }
        Ok(())
    }

    /// Number of data shards.
    pub fn data_shards(&self) -> usize {
        self.data
    }

    /// Number of parity shards.
    pub fn parity_shards(&self) -> usize {
        self.parity
    }

    /// The parity coefficient applied to data shard `i` for parity shard `j`.
    pub fn coefficient(&self, j: usize, i: usize) -> Option<u8> {
        if i >= self.data {
            return None;
        }
        self.matrix.coeffs.get(j * self.data + i).copied()
    }

    /// Computes every parity shard from the data shards (all of one length).
    pub fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        self.encode_with(Kernel::detect(), data, parity)
    }

    /// [`encode`](Self::encode) on a chosen kernel (falls back to scalar if unavailable).
    pub fn encode_with(
        &self,
        kernel: Kernel,
        data: &[&[u8]],
        parity: &mut [&mut [u8]],
    ) -> Result<(), FecError> {
        if data.len() != self.data || parity.len() != self.parity {
            return Err(FecError::ShardCount);
        }
        let len = data.first().map_or(0, |s| s.len());
        if data.iter().any(|s| s.len() != len) || parity.iter().any(|s| s.len() != len) {
            return Err(FecError::ShardLength);
        }
        if self.parity == 0 || len == 0 {
            return Ok(());
        }
        let mut src = [std::ptr::null::<u8>(); MAX_TOTAL_SHARDS];
        let mut dst = [std::ptr::null_mut::<u8>(); MAX_TOTAL_SHARDS];
        for (p, s) in src.iter_mut().zip(data) {
            *p = s.as_ptr();
        }
        for (p, s) in dst.iter_mut().zip(parity.iter_mut()) {
            *p = s.as_mut_ptr();
        }
        // SAFETY: every pointer comes from a live slice of exactly `len` bytes; the parity
        // slices are distinct `&mut` borrows, so no destination aliases anything.
        unsafe {
            self.matrix
                .apply(kernel, &src[..self.data], &dst[..self.parity], len)
        };
        Ok(())
    }

    /// Encodes shards laid out at a fixed stride in one buffer: shard `k` (data for
    /// `k < data`, then parity) is `buf[offset + k·stride ..][..shard_len]`. The data shards are
    /// read and the parity shards overwritten; bytes between shards are untouched.
    pub fn encode_strided(
        &self,
        buf: &mut [u8],
        stride: usize,
        offset: usize,
        shard_len: usize,
    ) -> Result<(), FecError> {
        self.encode_strided_with(Kernel::detect(), buf, stride, offset, shard_len)
    }

    /// [`encode_strided`](Self::encode_strided) on a chosen kernel.
    pub fn encode_strided_with(
        &self,
        kernel: Kernel,
        buf: &mut [u8],
        stride: usize,
        offset: usize,
        shard_len: usize,
    ) -> Result<(), FecError> {
        let total = self.data + self.parity;
        // Shards must not overlap each other and must all fit in `buf`.
        let fits = offset
            .checked_add(shard_len)
            .filter(|&end| end <= stride)
            .and_then(|end| (total - 1).checked_mul(stride)?.checked_add(end))
            .is_some_and(|end| end <= buf.len());
        if !fits {
            return Err(FecError::BufferTooSmall);
        }
        if self.parity == 0 || shard_len == 0 {
            return Ok(());
        }
        let base = buf.as_mut_ptr();
        let mut src = [std::ptr::null::<u8>(); MAX_TOTAL_SHARDS];
        let mut dst = [std::ptr::null_mut::<u8>(); MAX_TOTAL_SHARDS];
        for (k, p) in src.iter_mut().take(self.data).enumerate() {
            // In bounds: checked above.
            *p = base.wrapping_add(offset + k * stride).cast_const();
        }
        for (j, p) in dst.iter_mut().take(self.parity).enumerate() {
            *p = base.wrapping_add(offset + (self.data + j) * stride);
        }
        // SAFETY: all shards lie inside `buf` (checked above) and are pairwise disjoint because
        // `offset + shard_len <= stride`; `buf` is exclusively borrowed for the call.
        unsafe {
            self.matrix
                .apply(kernel, &src[..self.data], &dst[..self.parity], shard_len)
        };
        Ok(())
    }

    /// Rebuilds the missing data shards from any `data` surviving shards, as the client does.
    /// `shards` holds all `data + parity` shards in order, `present[k]` says whether shard `k`
    /// arrived; missing data shards are overwritten, parity shards are never rebuilt.
    pub fn reconstruct(&self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), FecError> {
        let total = self.data + self.parity;
        if shards.len() != total || present.len() != total {
            return Err(FecError::ShardCount);
        }
        let len = shards.first().map_or(0, |s| s.len());
        if shards.iter().any(|s| s.len() != len) {
            return Err(FecError::ShardLength);
        }
        let missing: Vec<usize> = (0..self.data).filter(|&k| !present[k]).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let chosen: Vec<usize> = (0..total).filter(|&k| present[k]).take(self.data).collect();
        if chosen.len() < self.data {
            return Err(FecError::TooFewShards);
        }
        // Rows of the full encoding matrix [I; M] for the chosen shards.
        let d = self.data;
        let mut sub = vec![0u8; d * d];
        for (row, &k) in chosen.iter().enumerate() {
            for col in 0..d {
                sub[row * d + col] = if k < d {
                    u8::from(k == col)
                } else {
                    self.matrix.coeffs[(k - d) * d + col]
                };
            }
        }
        let inv = invert(&sub, d).ok_or(FecError::SingularMatrix)?;
        let mut coeffs = Vec::with_capacity(missing.len() * d);
        for &m in &missing {
            coeffs.extend_from_slice(&inv[m * d..(m + 1) * d]);
        }
        let decoder = CoeffMatrix::new(missing.len(), d, coeffs);
        let src: Vec<*const u8> = chosen.iter().map(|&k| shards[k].as_ptr()).collect();
        let dst: Vec<*mut u8> = missing.iter().map(|&k| shards[k].as_mut_ptr()).collect();
        // SAFETY: pointers come from distinct `&mut` slices of `len` bytes; the chosen (read)
        // shards are present and the missing (written) ones are not, so the sets are disjoint.
        unsafe { decoder.apply(Kernel::detect(), &src, &dst, len) };
        Ok(())
    }
}

/// Gauss–Jordan inversion of an `n × n` row-major matrix over GF(2^8).
fn invert(m: &[u8], n: usize) -> Option<Vec<u8>> {
    let mut a = m.to_vec();
    let mut inv = vec![0u8; n * n];
    for i in 0..n {
        inv[i * n + i] = 1;
    }
    for col in 0..n {
        let pivot = (col..n).find(|&r| a[r * n + col] != 0)?;
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
                inv.swap(pivot * n + k, col * n + k);
            }
        }
        let f = gf_inv(a[col * n + col]);
        for k in 0..n {
            a[col * n + k] = gf_mul(a[col * n + k], f);
            inv[col * n + k] = gf_mul(inv[col * n + k], f);
        }
        for r in 0..n {
            let g = a[r * n + col];
            if r != col && g != 0 {
                for k in 0..n {
                    a[r * n + k] ^= gf_mul(g, a[col * n + k]);
                    inv[r * n + k] ^= gf_mul(g, inv[col * n + k]);
                }
            }
        }
    }
    Some(inv)
}

/// Video encoders keyed by (data, parity); building one is done once per shape.
#[derive(Debug, Default)]
pub struct EncoderCache {
    map: HashMap<(u8, u8), ReedSolomon>,
}

impl EncoderCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Cauchy code for (data, parity), built on first use.
    pub fn get(&mut self, data: usize, parity: usize) -> Result<&ReedSolomon, FecError> {
        let key = match (u8::try_from(data), u8::try_from(parity)) {
            (Ok(d), Ok(p)) => (d, p),
            _ => return Err(FecError::InvalidShardCount { data, parity }),
        };
        match self.map.entry(key) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(v) => Ok(v.insert(ReedSolomon::new(data, parity)?)),
        }
    }

    /// Number of cached encoders.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no encoder has been built yet.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests;
