//! ICMP errors about a connection (related traffic): accepted without evaluation and
//! translated with the connection, quote included.

use std::net::IpAddr;

use strata_rules::conn::ConnKey;
use strata_rules::model::Direction;

use super::{PortPath, Traversal};
use crate::transpose::{InnerRewrite, Transposition};

impl PortPath<'_> {
    /// An ICMP error arriving in `dir` about a packet (`inner`) that left this port the
    /// other way: either a packet of a connection opened that way (it left translated,
    /// as the connection's exit key), or a reply of a connection opened this way (it left
    /// as the reverse of the connection's entry key). The error is accepted as related
    /// traffic, without evaluation, and both it and its quote are translated back.
    pub(super) fn related(
        &mut self,
        dir: Direction,
        inner: ConnKey,
        now: u64,
    ) -> Option<Traversal> {
        let changed =
            |ip: IpAddr, port: u16, was: (IpAddr, u16)| (was != (ip, port)).then_some((ip, port));
        let conns = &mut self.state.conns;
        let (outer_dst, quote) = if let Some(c) = conns.lookup_reply(dir, inner.reverse(), now) {
            let k = conns.get(c)?.key;
            let src = changed(k.src_ip, k.src_port, (inner.src_ip, inner.src_port));
            let dst = changed(k.dst_ip, k.dst_port, (inner.dst_ip, inner.dst_port));
            (k.src_ip, InnerRewrite { src, dst })
        } else if let Some(c) = conns.lookup(dir, inner.reverse(), now) {
            let x = conns.get(c)?.exit_key;
            let src = changed(x.dst_ip, x.dst_port, (inner.src_ip, inner.src_port));
            let dst = changed(x.src_ip, x.src_port, (inner.dst_ip, inner.dst_port));
            (x.dst_ip, InnerRewrite { src, dst })
        } else {
            return None;
        };
        let rewrite = if outer_dst != inner.src_ip {
            Transposition {
                dst_ip: Some(outer_dst),
                ..Transposition::NONE
            }
        } else {
            Transposition::NONE
        };
        Some(Traversal {
            icmp_inner: Some(quote),
            ..Traversal::allow(None, rewrite)
        })
    }
}
