//! The fields few rules use (ICMP type/code, MACs, VLAN, VNI): checked after the tuple
//! spaces have found a candidate, instead of widening every hash key for them.

use crate::model::{Conditions, Fields, Mac};

/// Slot value of an atom whose rule has no rare conditions.
pub(super) const NO_RARE: u32 = u32::MAX;

/// A rule's conditions on the rare fields, with the semantics of [`Conditions::matches`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct RareConditions {
    icmp_type: Vec<u8>,
    icmp_code: Vec<u8>,
    src_mac: Vec<Mac>,
    dst_mac: Vec<Mac>,
    vlan: Vec<u16>,
    vni: Vec<u32>,
}

impl RareConditions {
    /// The rare part of `c`, or `None` when it has none (the rule needs no post-filter).
    pub fn of(c: &Conditions) -> Option<RareConditions> {
        let r = RareConditions {
            icmp_type: c.icmp_type.clone(),
            icmp_code: c.icmp_code.clone(),
            src_mac: c.src_mac.clone(),
            dst_mac: c.dst_mac.clone(),
            vlan: c.vlan.clone(),
            vni: c.vni.clone(),
        };
        (r != RareConditions::default()).then_some(r)
    }

    #[inline]
    pub fn matches(&self, f: &Fields) -> bool {
        fn opt_of<T: PartialEq + Copy>(list: &[T], v: Option<T>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.contains(&v))
        }
        opt_of(&self.icmp_type, f.icmp.map(|(t, _)| t))
            && opt_of(&self.icmp_code, f.icmp.map(|(_, c)| c))
            && (self.src_mac.is_empty() || self.src_mac.contains(&f.src_mac))
            && (self.dst_mac.is_empty() || self.dst_mac.contains(&f.dst_mac))
            && opt_of(&self.vlan, f.vlan)
            && opt_of(&self.vni, f.vni)
    }

    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.icmp_type.capacity()
            + self.icmp_code.capacity()
            + (self.src_mac.capacity() + self.dst_mac.capacity()) * size_of::<Mac>()
            + self.vlan.capacity() * 2
            + self.vni.capacity() * 4
    }
}
