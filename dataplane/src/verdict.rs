//! What happened to a frame: the [`Verdict`] the engine returns, and the
//! [`VerdictRecord`] users read (`strata replay --verdicts`, pcapng comments; DESIGN §4).

use std::io::Write;

use serde::Serialize;
use strata_rules::model::{Direction, Mac};

use crate::drop::DropReason;
use crate::policy::{CompiledPolicy, Decision, PortId};
use crate::transpose::{InnerRewrite, Transposition};

/// Something the switch itself sends back to the ingress port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Answer {
    /// A proxied ARP request, answered with this MAC (the reply frame is built from the
    /// request when the frame leaves: a verdict stays small).
    Arp(Mac),
    /// ICMP "fragmentation needed" / "packet too big" with this MTU, to the sender.
    TooBig { mtu: u16 },
    /// An ICMP echo request to an address the switch owns, answered from this MAC.
    Echo(Mac),
    /// An IPv6 neighbour solicitation for an address the switch answers for (the
    /// advertisement is built from the solicitation's target when the frame leaves).
    Neighbour,
}

/// The verdict of one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Verdict {
    pub ingress: PortId,
    pub direction: Direction,
    /// Where the frame leaves, for a forward.
    pub egress: Option<PortId>,
    pub drop: Option<DropReason>,
    /// The decision that mattered: the blocking one for a drop, else the receiving port's
    /// last evaluated layer (the sender's if the receiver saw a connection's reply).
    pub decided: Option<(PortId, Decision)>,
    /// The whole rewrite of the frame on its way (sender's layers, delivery, receiver's).
    pub rewrite: Transposition,
    /// What the switch answers on the ingress port, if anything.
    pub answer: Option<Answer>,
    /// For an ICMP error about a translated connection: the rewrite of its quote.
    pub icmp_inner: Option<InnerRewrite>,
}

impl Verdict {
    pub(crate) fn drop(ingress: PortId, direction: Direction, reason: DropReason) -> Verdict {
        Verdict {
            ingress,
            direction,
            egress: None,
            drop: Some(reason),
            decided: None,
            rewrite: Transposition::NONE,
            answer: None,
            icmp_inner: None,
        }
    }

    pub(crate) fn forward(ingress: PortId, direction: Direction, egress: PortId) -> Verdict {
        Verdict {
            egress: Some(egress),
            drop: None,
            ..Verdict::drop(ingress, direction, DropReason::Parse)
        }
    }
}

/// One line of `--verdicts`: the DESIGN §4 contract.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct VerdictRecord {
    pub index: u64,
    pub in_port: String,
    pub direction: &'static str,
    pub verdict: &'static str,
    pub out_port: Option<String>,
    pub reason: Option<&'static str>,
    pub layer: Option<String>,
    pub group: Option<String>,
    pub rule: Option<String>,
}

impl VerdictRecord {
    /// The record of verdict `v` of the `index`th frame, named under `policy` (the
    /// snapshot that judged it).
    pub fn of(index: u64, policy: &CompiledPolicy, v: &Verdict) -> VerdictRecord {
        let names = v.decided.and_then(|d| policy.decision_names(d));
        let (layer, group, rule) = match names {
            Some(n) => (Some(n.layer), n.group, Some(n.rule)),
            None => (None, None, None),
        };
        VerdictRecord {
            index,
            in_port: policy.port_name(v.ingress).to_string(),
            direction: v.direction.as_str(),
            verdict: if v.drop.is_some() { "drop" } else { "forward" },
            out_port: v.egress.map(|e| policy.port_name(e).to_string()),
            reason: v.drop.map(DropReason::as_str),
            layer,
            group,
            rule,
        }
    }

    /// The verdict path as one line, for pcapng comments and logs, e.g.
    /// `web out -> db: forward; by acl/acl-in/allow-web-pg`.
    pub fn path(&self) -> String {
        let mut s = format!("{} {} -> ", self.in_port, self.direction);
        match (&self.out_port, self.reason) {
            (Some(o), _) => s.push_str(&format!("{o}: forward")),
            (None, Some(r)) => s.push_str(&format!("drop ({r})")),
            (None, None) => s.push_str("drop"),
        }
        match (&self.layer, &self.rule) {
            (Some(l), Some(r)) => {
                s.push_str(&format!("; by {l}/"));
                if let Some(g) = &self.group {
                    s.push_str(&format!("{g}/"));
                }
                s.push_str(r);
            }
            _ if self.reason.is_none() && self.layer.is_none() => {
                s.push_str("; reply of a recorded connection or switched without layers")
            }
            _ => {}
        }
        s
    }
}

/// Writes one verdict record per frame as a JSON line (`strata replay --verdicts`).
pub struct VerdictLog<W: Write> {
    out: W,
}

impl<W: Write> VerdictLog<W> {
    pub fn new(out: W) -> VerdictLog<W> {
        VerdictLog { out }
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> crate::worker::Observer for VerdictLog<W> {
    fn observe(
        &mut self,
        index: u64,
        outcome: &crate::engine::Outcome<'_>,
        policy: &CompiledPolicy,
    ) -> Result<(), crate::worker::WorkerError> {
        let record = VerdictRecord::of(index, policy, &outcome.verdict);
        serde_json::to_writer(&mut self.out, &record)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|err| crate::worker::WorkerError::Observer {
                what: "verdicts",
                err,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verdict is copied on every packet: keep it small.
    #[test]
    fn a_verdict_stays_small() {
        let size = std::mem::size_of::<Verdict>();
        assert!(size <= 256, "Verdict is {size} bytes");
    }
}
