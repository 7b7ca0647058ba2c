//! Token buckets for the SYN rate limits (handshake-ebpf/src/rate_limit.rs): per source
//! host and network, per SYN-ACK destination network and per interface.
//!
//! A bucket holds up to `burst` tokens and gains `per_second` of them a second; a SYN
//! takes one or is refused. Tokens are kept in billionths so that a rate of R a second
//! adds R per elapsed nanosecond: no division on the way, and none by a rate of 0.

pub const NS_PER_SECOND: u64 = 1_000_000_000;

/// Prefix lengths the buckets are kept for: a source's host and network, a SYN-ACK's
/// destination network (the SYN's source network). `BucketKey::INTERFACE` has length 0.
pub const HOST_V4: u32 = 32;
pub const NETWORK_V4: u32 = 24;
pub const HOST_V6: u32 = 64;
pub const NETWORK_V6: u32 = 48;

/// Entries of the `SOURCE_BUCKETS` and `SYN_ACK_BUCKETS` LRU hash maps: when a flood of
/// spoofed sources fills one, the least recently used buckets are evicted, and a source
/// seen again starts with a full bucket.
pub const BUCKETS: u32 = 1 << 16;

/// A rate and the burst allowed above it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// One bucket: the value of a `*_BUCKETS` map entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens, in billionths of a token.
    pub nanotokens: u64,
    /// When `nanotokens` was last brought up to date (`bpf_ktime_get_ns`).
    pub updated_ns: u64,
}

impl Bucket {
    /// A bucket first seen at `now_ns`: full.
    #[inline(always)]
    pub fn full(now_ns: u64, rate: Rate) -> Bucket {
        Bucket {
            nanotokens: u64::from(rate.burst) * NS_PER_SECOND,
            updated_ns: now_ns,
        }
    }

    /// Refills the bucket for the time since its last update, then takes a token if it
    /// holds one. A `now_ns` before the last update (another CPU wrote a later time
    /// first) refills nothing.
    #[inline(always)]
    pub fn take(&mut self, now_ns: u64, rate: Rate) -> bool {
        let full = u64::from(rate.burst) * NS_PER_SECOND;
        let per_second = u64::from(rate.per_second);
        let elapsed = now_ns.saturating_sub(self.updated_ns);
        // A bucket idle for as long as it takes to fill is full; the test also keeps
        // `elapsed * per_second` below `full` (at most 2^32 * 10^9), far from overflow.
        self.nanotokens = if per_second != 0 && elapsed >= full / per_second {
            full
        } else {
            let refilled = self.nanotokens + elapsed * per_second;
            if refilled > full { full } else { refilled }
        };
        if now_ns > self.updated_ns {
            self.updated_ns = now_ns;
        }
        if self.nanotokens >= NS_PER_SECOND {
            self.nanotokens -= NS_PER_SECOND;
            true
        } else {
            false
        }
    }
}

/// A bucket's key: a prefix of an address (IPv4 in the first four bytes). The lengths of
/// the two families differ (32 and 24, 64 and 48), so no IPv4 key equals an IPv6 one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketKey {
    pub prefix_len: u32,
    pub address: [u8; 16],
}

impl BucketKey {
    /// The interface's own SYN-ACK bucket.
    pub const INTERFACE: BucketKey = BucketKey {
        prefix_len: 0,
        address: [0; 16],
    };

    /// The first `prefix_len` bits of `address` (a multiple of 8: the lengths above).
    ///
    /// Written byte by byte, volatile, from wherever `address` is (the XDP program passes
    /// the packet): LLVM turns stores of zeros it can foresee into a `memset` call, in the
    /// XDP program a BPF-to-BPF call per key, and a copy of the address would take stack
    /// that `handle`'s call chain does not have to spare on Linux 6.1 (512 bytes in all).
    #[inline(always)]
    pub fn prefix(address: &[u8; 16], prefix_len: u32) -> BucketKey {
        let mut key = core::mem::MaybeUninit::<BucketKey>::uninit();
        let key_ptr = key.as_mut_ptr();
        unsafe {
            core::ptr::addr_of_mut!((*key_ptr).prefix_len).write(prefix_len);
            let bytes = core::ptr::addr_of_mut!((*key_ptr).address) as *mut u8;
            let mut index = 0;
            while index < 16 {
                let byte = address[index] & prefix_mask(index, prefix_len);
                core::ptr::write_volatile(bytes.add(index), byte);
                index += 1;
            }
            key.assume_init()
        }
    }

    /// Cuts the key to its first `prefix_len` bits, in place (the XDP program walks one key
    /// from the host's bucket to its network's), volatile as in `prefix`.
    #[inline(always)]
    pub fn narrow(&mut self, prefix_len: u32) {
        let mut index = 0;
        while index < 16 {
            let byte = self.address[index] & prefix_mask(index, prefix_len);
            unsafe { core::ptr::write_volatile(&mut self.address[index], byte) };
            index += 1;
        }
        self.prefix_len = prefix_len;
    }

    #[inline(always)]
    pub fn ipv4(address: [u8; 4], prefix_len: u32) -> BucketKey {
        let [a, b, c, d] = address;
        BucketKey::prefix(
            &[a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            prefix_len,
        )
    }
}

/// The mask of byte `index` of an address cut to `prefix_len` bits (a multiple of 8).
#[inline(always)]
fn prefix_mask(index: usize, prefix_len: u32) -> u8 {
    if (index as u32) * 8 < prefix_len {
        0xff
    } else {
        0
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Rate {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for Bucket {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for BucketKey {}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const RATE: Rate = Rate {
        per_second: 10,
        burst: 3,
    };

    /// How many of `count` SYNs at `at_ns` the bucket lets through.
    fn taken(bucket: &mut Bucket, at_ns: u64, count: u32) -> u32 {
        (0..count).filter(|_| bucket.take(at_ns, RATE)).count() as u32
    }

    #[test]
    fn a_new_bucket_lets_the_burst_through_then_refuses() {
        let mut bucket = Bucket::full(5 * NS_PER_SECOND, RATE);
        assert_eq!(taken(&mut bucket, 5 * NS_PER_SECOND, 10), 3);
        assert_eq!(bucket.nanotokens, 0);
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let start = 7 * NS_PER_SECOND;
        let mut bucket = Bucket::full(start, RATE);
        assert_eq!(taken(&mut bucket, start, 3), 3);
        // 10 a second: one token each 100 ms, none before.
        assert_eq!(taken(&mut bucket, start + 99 * MS, 1), 0);
        assert_eq!(taken(&mut bucket, start + 100 * MS, 2), 1);
        // 250 ms later: 2.5 tokens, two whole ones; the half stays.
        assert_eq!(taken(&mut bucket, start + 350 * MS, 5), 2);
        assert_eq!(bucket.nanotokens, NS_PER_SECOND / 2);
        assert_eq!(taken(&mut bucket, start + 400 * MS, 5), 1);
    }

    #[test]
    fn refills_stop_at_the_burst() {
        let mut bucket = Bucket::full(0, RATE);
        assert_eq!(taken(&mut bucket, 0, 3), 3);
        assert_eq!(taken(&mut bucket, 2 * NS_PER_SECOND, 10), 3);
        // Idle for days, at the highest rate and burst: full, no overflow.
        let most = Rate {
            per_second: u32::MAX,
            burst: u32::MAX,
        };
        let mut bucket = Bucket::full(0, most);
        bucket.nanotokens = 0;
        assert!(bucket.take(u64::MAX / 2, most));
        assert_eq!(
            bucket.nanotokens,
            u64::from(u32::MAX) * NS_PER_SECOND - NS_PER_SECOND
        );
        let mut bucket = Bucket {
            nanotokens: 0,
            updated_ns: 0,
        };
        assert!(bucket.take(NS_PER_SECOND, most));
    }

    #[test]
    fn time_going_back_refills_nothing() {
        let mut bucket = Bucket::full(10 * NS_PER_SECOND, RATE);
        assert_eq!(taken(&mut bucket, 10 * NS_PER_SECOND, 3), 3);
        assert_eq!(taken(&mut bucket, 9 * NS_PER_SECOND, 1), 0);
        assert_eq!(bucket.updated_ns, 10 * NS_PER_SECOND);
    }

    #[test]
    fn a_zero_rate_or_burst_never_divides_by_zero() {
        let never = Rate {
            per_second: 0,
            burst: 0,
        };
        let mut bucket = Bucket::full(0, never);
        assert!(!bucket.take(NS_PER_SECOND, never));
        let no_refill = Rate {
            per_second: 0,
            burst: 1,
        };
        let mut bucket = Bucket::full(0, no_refill);
        assert!(bucket.take(0, no_refill));
        assert!(!bucket.take(100 * NS_PER_SECOND, no_refill));
    }

    #[test]
    fn keys_hold_the_prefix_only() {
        assert_eq!(
            BucketKey::ipv4([198, 18, 7, 9], NETWORK_V4),
            BucketKey::ipv4([198, 18, 7, 200], NETWORK_V4)
        );
        assert_ne!(
            BucketKey::ipv4([198, 18, 7, 9], HOST_V4),
            BucketKey::ipv4([198, 18, 7, 200], HOST_V4)
        );
        // 198.18.7.0/32 and 198.18.7.0/24 are two buckets.
        assert_ne!(
            BucketKey::ipv4([198, 18, 7, 0], HOST_V4),
            BucketKey::ipv4([198, 18, 7, 0], NETWORK_V4)
        );
        let mut v6 = [0x20, 0x01, 0, 2, 0, 0, 0xaa, 0xbb, 1, 2, 3, 4, 5, 6, 7, 8];
        let host = BucketKey::prefix(&v6, HOST_V6);
        assert_eq!(&host.address[..8], &v6[..8]);
        assert_eq!(host.address[8..], [0; 8]);
        let network = BucketKey::prefix(&v6, NETWORK_V6);
        assert_eq!(network.address[..6], [0x20, 0x01, 0, 2, 0, 0]);
        assert_eq!(network.address[6..], [0; 10]);
        v6[7] = 0xcc;
        assert_eq!(BucketKey::prefix(&v6, NETWORK_V6), network);
        assert_ne!(BucketKey::prefix(&v6, HOST_V6), host);
    }
}
