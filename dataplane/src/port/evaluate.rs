//! The layers of one port in traversal order (top to bottom outbound, bottom to top
//! inbound): each layer's decision, and each transposition's effect on what the following
//! layers see. A SNAT allocates its port here; a load balancer picks its backend here.

use smallvec::SmallVec;
use std::net::IpAddr;
use strata_rules::conn::conn_key;
use strata_rules::maglev::flow_hash;

use strata_rules::model::{Action, Direction, Fields, LoadBalancer, PortRange, proto};

use crate::drop::DropReason;
use crate::policy::{CompiledLayer, Decision};
use crate::state::NatState;
use crate::state::conntrack::Bindings;
use crate::transpose::Transposition;

/// What the layers made of a packet.
pub(super) struct Evaluation {
    pub allowed: bool,
    pub stateful: bool,
    /// A drop that is not a layer's decision (NAT ports exhausted).
    pub failed: Option<DropReason>,
    pub decided: Option<Decision>,
    pub hits: SmallVec<[Decision; 4]>,
    pub rewrite: Transposition,
    /// The packet as it leaves the port.
    pub out: Fields,
    pub out_icmp_id: Option<u16>,
    /// What this evaluation allocated or reused.
    pub bindings: Bindings,
    /// Whether `bindings.snat` was newly allocated (to be released if unused).
    pub fresh_snat: bool,
}

impl Evaluation {
    /// The drop reason of a blocked evaluation: a layer default's or a rule's.
    pub fn drop_reason(&self) -> DropReason {
        match self.decided.map(|d| d.by) {
            Some(strata_rules::decision::DecidedBy::Default { .. }) => DropReason::AclDefault,
            _ => DropReason::Acl,
        }
    }
}

/// Runs `layers` in `dir` order. A SNAT allocates a port from `nat` unless `reuse` holds
/// the connection's binding (re-validation passes no `nat` and allocates nothing).
pub(super) fn evaluate(
    layers: &[CompiledLayer],
    dir: Direction,
    f: &Fields,
    icmp_id: Option<u16>,
    mut nat: Option<&mut NatState>,
    reuse: Option<Bindings>,
) -> Evaluation {
    let mut ev = Evaluation {
        allowed: true,
        stateful: false,
        failed: None,
        decided: None,
        hits: SmallVec::new(),
        rewrite: Transposition::NONE,
        out: *f,
        out_icmp_id: icmp_id,
        bindings: reuse.unwrap_or_default(),
        fresh_snat: false,
    };
    let n = layers.len();
    for step in 0..n {
        let li = match dir {
            Direction::Out => step,
            Direction::In => n - 1 - step,
        };
        let Some(layer) = layers.get(li) else { break };
        let o = layer.evaluate(dir, &ev.out);
        let d = Decision {
            layer: li as u16,
            dir,
            by: o.by,
        };
        ev.hits.push(d);
        ev.decided = Some(d);
        let t = match o.action {
            Action::Block => {
                ev.allowed = false;
                ev.stateful = false;
                return ev;
            }
            Action::Allow => Transposition::NONE,
            Action::Snat { ip, ports } => match snat(&mut ev, *ip, *ports, nat.as_deref_mut()) {
                Ok(t) => t,
                Err(reason) => {
                    ev.allowed = false;
                    ev.failed = Some(reason);
                    return ev;
                }
            },
            Action::Dnat { ip, port } => Transposition {
                dst_ip: Some(*ip),
                dst_port: port.filter(|_| proto::has_ports(ev.out.protocol)),
                ..Transposition::NONE
            },
            Action::LoadBalance(lb) => load_balance(&mut ev, layer, li, o.by, lb),
            Action::SetMac { src, dst } => Transposition {
                src_mac: *src,
                dst_mac: *dst,
                ..Transposition::NONE
            },
        };
        if !t.is_identity() {
            let (out, id) = t.apply_fields(&ev.out, ev.out_icmp_id);
            ev.out = out;
            ev.out_icmp_id = id;
            ev.rewrite = ev.rewrite.then(&t);
        }
        ev.stateful |= o.stateful;
    }
    ev
}

/// Source NAT: the connection's own binding if it has one for this address, else a port
/// from the pool. Without a pool (re-validation) the connection keeps its ports.
fn snat(
    ev: &mut Evaluation,
    ip: IpAddr,
    range: PortRange,
    nat: Option<&mut NatState>,
) -> Result<Transposition, DropReason> {
    let mut t = Transposition {
        src_ip: Some(ip),
        ..Transposition::NONE
    };
    let Some(k) = conn_key(&ev.out, ev.out_icmp_id) else {
        return Ok(t);
    };
    let has_pool = nat.is_some();
    let port = match ev.bindings.snat {
        Some((bip, bp, port)) if bip == ip && bp == k.protocol => Some(port),
        _ => nat.and_then(|nat| nat.pools.allocate(ip, k.protocol, range, k.src_port)),
    };
    match port {
        Some(port) => {
            if ev.bindings.snat != Some((ip, k.protocol, port)) {
                ev.bindings.snat = Some((ip, k.protocol, port));
                ev.fresh_snat = true;
            }
            t.src_port = Some(port);
            Ok(t)
        }
        None if has_pool => Err(DropReason::NatPortsExhausted),
        None => Ok(t),
    }
}

/// Load balancing: the connection's backend if it has one from this layer, else the
/// consistent-hash choice for the flow.
fn load_balance(
    ev: &mut Evaluation,
    layer: &CompiledLayer,
    li: usize,
    by: strata_rules::decision::DecidedBy,
    lb: &LoadBalancer,
) -> Transposition {
    let chosen = match ev.bindings.backend {
        Some((l, b)) if usize::from(l) == li => Some(usize::from(b)),
        _ => layer
            .maglev(by)
            .and_then(|m| m.lookup(flow_hash(&ev.out, lb.distribution))),
    };
    let Some((i, b)) = chosen.and_then(|i| lb.backends.get(i).map(|b| (i, b))) else {
        return Transposition::NONE;
    };
    ev.bindings.backend = Some((li as u16, i as u16));
    Transposition {
        dst_ip: Some(b.ip),
        dst_port: (b.port != 0 && proto::has_ports(ev.out.protocol)).then_some(b.port),
        ..Transposition::NONE
    }
}
