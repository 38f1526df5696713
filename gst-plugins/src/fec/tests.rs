//! Known-answer tests for the Reed–Solomon codes (`docs/PROTOCOL.md` §4.5, §5.4).
//!
//! The reference below is deliberately naive and independent of the crate's tables: field
//! multiplication by shift-and-reduce, inversion by exhaustive search, and the Cauchy formula
//! written out directly.

use super::*;

/// Shift-and-add multiplication modulo x^8 + x^4 + x^3 + x^2 + 1.
fn ref_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1d;
        }
        b >>= 1;
    }
    p
}

fn ref_inv(a: u8) -> u8 {
    (1..=255u8).find(|&x| ref_mul(a, x) == 1).unwrap()
}

/// parity_j[k] = XOR_i inv((p + i) ^ j) · data_i[k]
fn ref_cauchy_parity(data: &[Vec<u8>], parity: usize) -> Vec<Vec<u8>> {
    let d = data.len();
    let len = data[0].len();
    let coeff: Vec<Vec<u8>> = (0..parity)
        .map(|j| (0..d).map(|i| ref_inv(((parity + i) ^ j) as u8)).collect())
        .collect();
    (0..parity)
        .map(|j| {
            (0..len)
                .map(|k| (0..d).fold(0u8, |acc, i| acc ^ ref_mul(coeff[j][i], data[i][k])))
                .collect()
        })
        .collect()
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

fn random_shards(rng: &mut Rng, d: usize, len: usize) -> Vec<Vec<u8>> {
    (0..d).map(|_| rng.bytes(len)).collect()
}

fn encode_vec(rs: &ReedSolomon, kernel: Kernel, data: &[Vec<u8>], len: usize) -> Vec<Vec<u8>> {
    let refs: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
    let mut parity = vec![vec![0xAAu8; len]; rs.parity_shards()];
    let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
    rs.encode_with(kernel, &refs, &mut prefs).unwrap();
    parity
}

fn available_kernels() -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

#[test]
fn field_tables_match_reference() {
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            assert_eq!(gf_mul(a, b), ref_mul(a, b), "{a} * {b}");
        }
    }
    for a in 1..=255u8 {
        assert_eq!(gf_inv(a), ref_inv(a));
    }
}

#[test]
fn cauchy_4_2_rows_literal() {
    // docs/PROTOCOL.md §4.5: the (4,2) rows are 8e f4 47 a7 / f4 8e a7 47.
    let rs = ReedSolomon::new(4, 2).unwrap();
    // Unit shards: data shard i is e_i, so parity j spells out row j of the matrix.
    let data: Vec<Vec<u8>> = (0..4)
        .map(|i| (0..4).map(|k| u8::from(k == i)).collect())
        .collect();
    for kernel in available_kernels() {
        let parity = encode_vec(&rs, kernel, &data, 4);
        assert_eq!(parity[0], [0x8e, 0xf4, 0x47, 0xa7], "{kernel:?}");
        assert_eq!(parity[1], [0xf4, 0x8e, 0xa7, 0x47], "{kernel:?}");
    }
}

#[test]
fn audio_matrix_literal() {
    let rs = ReedSolomon::audio();
    let data: Vec<Vec<u8>> = (0..4)
        .map(|i| (0..4).map(|k| u8::from(k == i)).collect())
        .collect();
    for kernel in available_kernels() {
        let parity = encode_vec(&rs, kernel, &data, 4);
        assert_eq!(parity[0], [0x77, 0x40, 0x38, 0x0e], "{kernel:?}");
        assert_eq!(parity[1], [0xc7, 0xa7, 0x0d, 0x6c], "{kernel:?}");
    }
    // A data-dependent literal: payload bytes 0x01, 0x02, 0x03, 0x04 in the four shards.
    // parity0 = 77·1 ^ 40·2 ^ 38·3 ^ 0e·4, parity1 = c7·1 ^ a7·2 ^ 0d·3 ^ 6c·4.
    let data: Vec<Vec<u8>> = (1..=4u8).map(|v| vec![v; 3]).collect();
    let parity = encode_vec(&rs, Kernel::detect(), &data, 3);
    let p0 = ref_mul(0x77, 1) ^ ref_mul(0x40, 2) ^ ref_mul(0x38, 3) ^ ref_mul(0x0e, 4);
    let p1 = ref_mul(0xc7, 1) ^ ref_mul(0xa7, 2) ^ ref_mul(0x0d, 3) ^ ref_mul(0x6c, 4);
    assert_eq!(parity[0], vec![p0; 3]);
    assert_eq!(parity[1], vec![p1; 3]);
    assert_eq!((p0, p1), (0x87, 0x2e));
}

#[test]
fn cauchy_parity_matches_reference() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // Shard lengths exercise full vectors and every tail path (64, 32, scalar).
    let shapes = [
        (1, 1),
        (1, 2),
        (3, 2),
        (4, 2),
        (7, 3),
        (20, 4),
        (40, 8),
        (100, 20),
        (150, 30),
        (201, 41),
        (212, 43),
    ];
    for (d, p) in shapes {
        let rs = ReedSolomon::new(d, p).unwrap();
        for len in [1, 16, 33, 100, 1408] {
            let data = random_shards(&mut rng, d, len);
            let expected = ref_cauchy_parity(&data, p);
            for kernel in available_kernels() {
                let parity = encode_vec(&rs, kernel, &data, len);
                assert_eq!(parity, expected, "({d},{p}) len {len} {kernel:?}");
            }
        }
    }
}

#[test]
fn matches_fec_rs() {
    // fec-rs 0.1.0 is documented as bit-compatible with nanors (docs/PEERS.md §5).
    let mut rng = Rng(42);
    for (d, p) in [(4, 2), (20, 4), (100, 20), (212, 43)] {
        let data = random_shards(&mut rng, d, 1408);
        let ours = encode_vec(
            &ReedSolomon::new(d, p).unwrap(),
            Kernel::detect(),
            &data,
            1408,
        );
        let theirs_rs = fec_rs::ReedSolomon::new(d, p).unwrap();
        let mut shards: Vec<Vec<u8>> = data.clone();
        shards.extend((0..p).map(|_| vec![0u8; 1408]));
        theirs_rs.encode(&mut shards).unwrap();
        assert_eq!(&shards[d..], &ours[..], "({d},{p})");
    }
    let data = random_shards(&mut rng, 4, 200);
    let ours = encode_vec(&ReedSolomon::audio(), Kernel::detect(), &data, 200);
    let mut theirs = fec_rs::ReedSolomon::new(4, 2).unwrap();
    theirs.set_parity_matrix(&AUDIO_PARITY_MATRIX).unwrap();
    let mut shards = data.clone();
    shards.extend((0..2).map(|_| vec![0u8; 200]));
    theirs.encode(&mut shards).unwrap();
    assert_eq!(&shards[4..], &ours[..]);
}

#[test]
fn multi_block_strided() {
    // Three consecutive blocks of a frame laid out like the packetizer does: each slot is
    // `stride` bytes and the shard starts `offset` bytes in.
    let mut rng = Rng(7);
    let (stride, offset, len) = (1500, 32, 1408);
    for (d, p) in [(180, 36), (150, 30), (5, 2)] {
        let rs = ReedSolomon::new(d, p).unwrap();
        let mut buf = rng.bytes((d + p) * stride);
        let data: Vec<Vec<u8>> = (0..d)
            .map(|k| buf[offset + k * stride..][..len].to_vec())
            .collect();
        let before = buf.clone();
        for kernel in available_kernels() {
            rs.encode_strided_with(kernel, &mut buf, stride, offset, len)
                .unwrap();
            let expected = ref_cauchy_parity(&data, p);
            for (j, e) in expected.iter().enumerate() {
                assert_eq!(
                    &buf[offset + (d + j) * stride..][..len],
                    &e[..],
                    "{kernel:?}"
                );
            }
            // Bytes outside the parity shards are untouched.
            for k in 0..d + p {
                let slot = &buf[k * stride..(k + 1) * stride];
                let old = &before[k * stride..(k + 1) * stride];
                assert_eq!(slot[..offset], old[..offset]);
                assert_eq!(slot[offset + len..], old[offset + len..]);
                if k < d {
                    assert_eq!(slot, old);
                }
            }
        }
    }
}

#[test]
fn strided_rejects_bad_layouts() {
    let rs = ReedSolomon::new(4, 2).unwrap();
    let mut buf = vec![0u8; 6 * 100];
    assert_eq!(rs.encode_strided(&mut buf, 100, 0, 100), Ok(()));
    assert_eq!(
        rs.encode_strided(&mut buf, 100, 1, 100),
        Err(FecError::BufferTooSmall)
    );
    assert_eq!(
        rs.encode_strided(&mut buf[..599], 100, 0, 100),
        Err(FecError::BufferTooSmall)
    );
    assert_eq!(
        rs.encode_strided(&mut buf, usize::MAX, 0, 100),
        Err(FecError::BufferTooSmall)
    );
}

#[test]
fn invalid_shapes_rejected() {
    assert!(ReedSolomon::new(0, 2).is_err());
    assert!(ReedSolomon::new(200, 56).is_err());
    assert!(ReedSolomon::new(212, 43).is_ok());
    assert!(ReedSolomon::with_parity_matrix(4, 2, &[0; 7]).is_err());
    let rs = ReedSolomon::new(4, 2).unwrap();
    let d = [[0u8; 8]; 4];
    let refs: Vec<&[u8]> = d.iter().map(|v| &v[..]).collect();
    let mut p = [[0u8; 7]; 2];
    let mut prefs: Vec<&mut [u8]> = p.iter_mut().map(|v| &mut v[..]).collect();
    assert_eq!(rs.encode(&refs, &mut prefs), Err(FecError::ShardLength));
    assert_eq!(rs.encode(&refs[..3], &mut prefs), Err(FecError::ShardCount));
}

#[test]
fn recovers_up_to_parity_losses() {
    let mut rng = Rng(99);
    for (d, p) in [(4, 2), (20, 4), (100, 20), (212, 43)] {
        let rs = ReedSolomon::new(d, p).unwrap();
        let data = random_shards(&mut rng, d, 301);
        let parity = encode_vec(&rs, Kernel::detect(), &data, 301);
        let original: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
        for trial in 0..4 {
            // Lose exactly p shards, chosen pseudo-randomly (data-heavy on trial 0).
            let mut lost = Vec::new();
            while lost.len() < p {
                let k = if trial == 0 {
                    (rng.next() as usize) % d
                } else {
                    (rng.next() as usize) % (d + p)
                };
                if !lost.contains(&k) {
                    lost.push(k);
                }
            }
            let mut shards = original.clone();
            let present: Vec<bool> = (0..d + p).map(|k| !lost.contains(&k)).collect();
            for &k in &lost {
                shards[k].fill(0xEE);
            }
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|v| v.as_mut_slice()).collect();
            rs.reconstruct(&mut refs, &present).unwrap();
            assert_eq!(&shards[..d], &original[..d], "({d},{p}) trial {trial}");
        }
        // One loss too many cannot be recovered.
        let mut shards = original.clone();
        let present: Vec<bool> = (0..d + p).map(|k| k > p).collect();
        let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|v| v.as_mut_slice()).collect();
        assert_eq!(
            rs.reconstruct(&mut refs, &present),
            Err(FecError::TooFewShards)
        );
    }
}

#[test]
fn audio_recovery() {
    let rs = ReedSolomon::audio();
    let mut rng = Rng(5);
    let data = random_shards(&mut rng, 4, 128);
    let parity = encode_vec(&rs, Kernel::detect(), &data, 128);
    let original: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
    for a in 0..4 {
        for b in a + 1..4 {
            let mut shards = original.clone();
            shards[a].fill(0);
            shards[b].fill(0);
            let present: Vec<bool> = (0..6).map(|k| k != a && k != b).collect();
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|v| v.as_mut_slice()).collect();
            rs.reconstruct(&mut refs, &present).unwrap();
            assert_eq!(&shards[..4], &original[..4]);
        }
    }
}

#[test]
fn cache_reuses_encoders() {
    let mut cache = EncoderCache::new();
    assert!(cache.is_empty());
    cache.get(150, 30).unwrap();
    cache.get(150, 30).unwrap();
    cache.get(40, 8).unwrap();
    assert_eq!(cache.len(), 2);
    assert!(cache.get(300, 2).is_err());
    assert!(cache.get(250, 10).is_err());
}
