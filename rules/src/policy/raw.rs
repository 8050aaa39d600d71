//! The policy file as written: serde types that mirror the TOML one to one, before any
//! validation. Every field is documented here and in `docs/policy.md`.
//!
//! Values that need a semantic check (addresses, ports, names) are kept as
//! [`Spanned`] text so that a later error can point at the exact line and column; unknown
//! fields are refused by `deny_unknown_fields`, so a typo never silently does nothing.
//!
//! The HNS JSON reader (`super::hns`) produces the same types, so both formats are
//! checked and compiled by one compiler, and `strata import-hns` prints them as TOML.

use serde::Deserialize;
use toml::Spanned;

use super::values::{Items, Scalar};

/// Everything a policy holds, from one file or several (TOML and HNS JSON together).
#[derive(Debug, Default)]
pub struct File {
    /// `[host]`.
    pub host: Option<Spanned<Host>>,
    /// `[template]`: policies every endpoint of the host gets (Calico's static rules).
    pub template: Option<Spanned<Template>>,
    /// `[[network]]`s, in file order.
    pub networks: Vec<Spanned<Network>>,
    /// `[[endpoint]]`s, in file order.
    pub endpoints: Vec<Spanned<Endpoint>>,
    /// `[[remote_endpoint]]`s: endpoints that live on other hosts.
    pub remote_endpoints: Vec<Spanned<RemoteEndpoint>>,
    /// `[[load_balancer]]`s, in file order.
    pub load_balancers: Vec<Spanned<LoadBalancer>>,
}

/// `[host]`: the host's uplink port.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Port name of the uplink; default `"uplink"`.
    pub name: Option<Spanned<String>>,
    /// MAC of the uplink; default `02:00:00:00:00:01`.
    pub mac: Option<Spanned<String>>,
    /// Host addresses (bare IPv4 or IPv6 addresses). NAT translates to these.
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
    /// MTU of the uplink, 576..=9216; default 1500.
    pub mtu: Option<Spanned<i64>>,
    /// Host NIC the service attaches the uplink to (e.g. `eth0`); optional.
    pub interface: Option<String>,
}

/// `driver = ...` of a network.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    #[serde(alias = "NAT", alias = "Nat")]
    Nat,
    #[serde(alias = "Transparent")]
    Transparent,
    #[serde(alias = "L2Bridge")]
    L2bridge,
    #[serde(alias = "L2Tunnel")]
    L2tunnel,
    #[serde(alias = "Overlay")]
    Overlay,
}

impl Driver {
    /// As the TOML file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Nat => "nat",
            Driver::Transparent => "transparent",
            Driver::L2bridge => "l2bridge",
            Driver::L2tunnel => "l2tunnel",
            Driver::Overlay => "overlay",
        }
    }
}

/// `[[network]]`: a virtual switch segment.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Unique network name; endpoints refer to it.
    pub name: Spanned<String>,
    /// `nat` (default), `transparent`, `l2bridge`, `l2tunnel` or `overlay`.
    pub driver: Option<Spanned<Driver>>,
    /// Address prefixes of the network (IPv4 and/or IPv6, host bits clear). At least one,
    /// with `subnet`; `subnets = []` says the subnet is assigned at run time (by a CNI
    /// plugin's IPAM) and not known here.
    pub subnets: Option<Vec<Spanned<String>>>,
    /// A single subnet; same as `subnets = [...]` with one item (both may be given).
    pub subnet: Option<Spanned<String>>,
    /// Default gateway of the endpoints; must lie in one of the subnets. Optional.
    pub gateway: Option<Spanned<String>>,
    /// 802.1Q VLAN ID, 1..=4094. Optional.
    pub vlan: Option<Spanned<i64>>,
    /// VXLAN network identifier, 1..=16777215: required for `overlay`, refused otherwise.
    pub vni: Option<Spanned<i64>>,
    /// UDP port of the VXLAN encapsulation, 1..=65535; `overlay` only. Default 4789.
    pub vxlan_port: Option<Spanned<i64>>,
    /// `[network.outbound_nat]`: SNAT of the endpoints' outbound traffic to a VIP;
    /// `overlay` and `l2bridge` only.
    pub outbound_nat: Option<Spanned<OutboundNat>>,
    /// `[[network.remote_subnet_route]]`: customer prefixes reached through remote hosts;
    /// `overlay` only.
    #[serde(default)]
    pub remote_subnet_route: Vec<Spanned<RemoteSubnetRoute>>,
    /// `[network.template]`: policies every endpoint of the network gets, before its own
    /// (what a CNI configuration gives every endpoint it creates).
    pub template: Option<Spanned<Template>>,
}

/// Endpoint policies that a whole network (`[network.template]`) or the whole host
/// (`[template]`) gives each of its endpoints, before the endpoint's own.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// ACLs, as `[[endpoint.acl]]`; default ids `template-acl<N>` (`host-acl<N>` for the
    /// host's template).
    #[serde(default)]
    pub acl: Vec<Spanned<Acl>>,
    /// OutboundNATs, as `[[endpoint.outbound_nat]]`.
    #[serde(default)]
    pub outbound_nat: Vec<Spanned<EndpointOutboundNat>>,
    /// Routes to the host, as `[[endpoint.route]]`.
    #[serde(default)]
    pub route: Vec<Spanned<Route>>,
}

/// `[[endpoint.outbound_nat]]` (HNS OutBoundNAT, an endpoint policy): the endpoint's
/// outbound traffic of one address family leaves with source address `vip`, except to
/// the network's subnets and to `exceptions`; with `destinations`, only traffic to them
/// is translated. At most one per address family and endpoint.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct EndpointOutboundNat {
    /// 1-based position in its list, set by the reader, for messages.
    #[serde(skip)]
    pub position: usize,
    /// The address sources become; default: the host's first address of the family
    /// (HNS uses the host's address when a policy gives no VIP).
    pub vip: Option<Spanned<String>>,
    /// Destination prefixes that keep their source address.
    pub exceptions: Option<Spanned<Items>>,
    /// Only traffic to these prefixes is translated; default: all.
    pub destinations: Option<Spanned<Items>>,
    /// `ipv4` or `ipv6`: the family translated, when there is no `vip` to tell it (default:
    /// the family of the prefixes, else IPv4).
    pub family: Option<Spanned<String>>,
}

/// `[[endpoint.route]]` (HNS ROUTE / SDNRoute with NeedEncap): packets to `prefix` are
/// handed to the host: they leave through the uplink with the host's MAC as their
/// destination MAC, instead of being bridged or routed on.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// 1-based position in its list, set by the reader, for messages.
    #[serde(skip)]
    pub position: usize,
    /// The destination prefix.
    pub prefix: Spanned<String>,
}

/// `[[remote_endpoint]]` (an HNS remote endpoint: `IsRemoteEndpoint`, or `Flags` 1): an
/// address of the network that lives on another host. It is no port: on an overlay
/// network packets to it are VXLAN-encapsulated to `provider_address`; elsewhere they
/// leave through the uplink like any address off the host.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RemoteEndpoint {
    /// Name, for messages only.
    pub name: Option<Spanned<String>>,
    /// Name of its `[[network]]`.
    pub network: Spanned<String>,
    /// Its MAC: the inner destination MAC of encapsulated packets (overlay).
    pub mac: Option<Spanned<String>>,
    /// IPv4 address; `ipv4` and/or `ipv6` is needed.
    pub ipv4: Option<Spanned<String>>,
    /// IPv6 address.
    pub ipv6: Option<Spanned<String>>,
    /// The remote host's provider address: required on an overlay network.
    pub provider_address: Option<Spanned<String>>,
}

/// `[network.outbound_nat]` (HNS OutBoundNAT): outbound traffic of the network's
/// endpoints is source-NATed to `vip`, except to the network's own subnets and to
/// `exceptions`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct OutboundNat {
    /// The address sources are translated to (IPv4 or IPv6).
    pub vip: Spanned<String>,
    /// Destination prefixes that are not NATed (HNS `Exceptions`); default none.
    pub exceptions: Option<Spanned<Items>>,
}

/// `[[network.remote_subnet_route]]` (HNS RemoteSubnetRoute): a customer-address prefix
/// of an overlay network that lives on a remote host.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RemoteSubnetRoute {
    /// The customer prefix; same family as one of the network's subnets and overlapping
    /// none of them, nor another remote route.
    pub prefix: Spanned<String>,
    /// The remote host's provider (underlay) address, IPv4 or IPv6.
    pub provider_address: Spanned<String>,
    /// Inner destination MAC for these addresses; optional, unicast.
    pub mac: Option<Spanned<String>>,
}

/// `protocol = ...` of a load balancer.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LbProtocol {
    #[serde(alias = "TCP")]
    Tcp,
    #[serde(alias = "UDP")]
    Udp,
}

/// `distribution = ...` of a load balancer.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    #[serde(alias = "FiveTuple")]
    FiveTuple,
    #[serde(alias = "SourceIPProtocol")]
    SourceIpProtocol,
    #[serde(alias = "SourceIP")]
    SourceIp,
}

/// `[[load_balancer]]` (HNS LoadBalancer / ELB policy): connections of any endpoint to
/// `vip`:`port` over `protocol` go to one of `backends`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    /// Unique name; the `lb` layer's rule id, and what `load_balancer = "..."` of a custom
    /// rule refers to.
    pub name: Spanned<String>,
    /// `tcp` (default) or `udp`.
    pub protocol: Option<Spanned<LbProtocol>>,
    /// The frontend address (IPv4 or IPv6).
    pub vip: Spanned<String>,
    /// The frontend port, 1..=65535.
    pub port: Spanned<i64>,
    /// Backends (DIPs): `"198.18.1.10:80"`, `"[2001:db8::5]:8080"`, or a bare address
    /// (port omitted or 0 = keep the destination port). Same family as `vip`; at least one.
    pub backends: Vec<Spanned<String>>,
    /// `five-tuple` (default), `source-ip-protocol` or `source-ip`.
    pub distribution: Option<Distribution>,
}

/// `isolation = ...` of an endpoint: chooses its default ACL profile (DESIGN §1).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    #[serde(alias = "Process")]
    Process,
    #[serde(alias = "ProcessLegacy")]
    ProcessLegacy,
    #[serde(alias = "HyperV", alias = "Hyperv", alias = "hyper-v")]
    Hyperv,
}

/// `action = ...` of an ACL or a rule.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[serde(alias = "Allow")]
    Allow,
    #[serde(alias = "Block")]
    Block,
}

/// `direction = ...` of an ACL.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AclDirection {
    #[serde(alias = "In")]
    In,
    #[serde(alias = "Out")]
    Out,
}

/// `direction = ...` of a custom group.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GroupDirection {
    #[serde(alias = "In")]
    In,
    #[serde(alias = "Out")]
    Out,
    #[serde(alias = "Both")]
    Both,
}

/// `[[endpoint]]`: a container endpoint (its vNIC port).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Unique port name (also the pcapng interface name in replays).
    pub name: Spanned<String>,
    /// Name of the `[[network]]` it is attached to.
    pub network: Spanned<String>,
    /// Unicast MAC, `00:15:5d:01:01:0a` or `00-15-5D-01-01-0A`; unique on the host.
    pub mac: Spanned<String>,
    /// IPv4 address, inside one of the network's subnets. `ipv4` and/or `ipv6` is needed.
    pub ipv4: Option<Spanned<String>>,
    /// IPv6 address, inside one of the network's subnets.
    pub ipv6: Option<Spanned<String>>,
    /// `process` (default), `process-legacy` or `hyperv`.
    pub isolation: Option<Spanned<Isolation>>,
    /// Host-side interface (veth) the service attaches to. Optional.
    pub interface: Option<String>,
    /// HNS-style ACL policies, from the endpoint's point of view.
    #[serde(default)]
    pub acl: Vec<Spanned<Acl>>,
    /// NAT port mappings (`docker run -p`); only on a `nat` network.
    #[serde(default)]
    pub port_mapping: Vec<Spanned<PortMapping>>,
    /// Custom VFP layers, placed below `acl` in file order.
    #[serde(default)]
    pub layer: Vec<Spanned<Layer>>,
    /// OutboundNATs of the endpoint (HNS endpoint policy), at most one per family.
    #[serde(default)]
    pub outbound_nat: Vec<Spanned<EndpointOutboundNat>>,
    /// Routes to the host (HNS ROUTE / SDNRoute with NeedEncap).
    #[serde(default)]
    pub route: Vec<Spanned<Route>>,
}

/// `[[endpoint.acl]]`: an HNS ACL policy.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// 1-based position among the endpoint's ACLs, set by the reader (0 = the position in
    /// the list), so that errors keep naming `acl #N` right when an earlier ACL failed.
    #[serde(skip)]
    pub position: usize,
    /// Rule id shown in verdicts; default `acl<N>` (N = 1-based position in the endpoint).
    pub id: Option<Spanned<String>>,
    /// `allow` or `block`.
    pub action: Action,
    /// `in` (towards the container) or `out` (from the container).
    pub direction: AclDirection,
    /// Protocol names or numbers; absent or empty = any.
    pub protocols: Option<Spanned<Items>>,
    /// The endpoint's addresses (prefixes); absent = any.
    pub local_addresses: Option<Spanned<Items>>,
    /// The peer's addresses (prefixes); absent = any.
    pub remote_addresses: Option<Spanned<Items>>,
    /// The endpoint's ports (`80`, `"8000-8080"`); needs protocols tcp, udp or sctp.
    pub local_ports: Option<Spanned<Items>>,
    /// The peer's ports; needs protocols tcp, udp or sctp.
    pub remote_ports: Option<Spanned<Items>>,
    /// Lower wins; ties go to the ACL written first. Default 100.
    pub priority: Option<Spanned<i64>>,
}

/// `protocol = ...` of a port mapping.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MappingProtocol {
    #[serde(alias = "TCP")]
    Tcp,
    #[serde(alias = "UDP")]
    Udp,
}

/// `[[endpoint.port_mapping]]`: publish `internal_port` of the endpoint on
/// `external_port` of the host addresses.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// 1-based position among the endpoint's port mappings; see [`Acl::position`].
    #[serde(skip)]
    pub position: usize,
    /// `tcp` (default) or `udp`.
    pub protocol: Option<MappingProtocol>,
    /// The container's port, 1..=65535.
    pub internal_port: Spanned<i64>,
    /// The host's port, 1..=65535; unique per protocol on the host.
    pub external_port: Spanned<i64>,
}

/// `[[endpoint.layer]]`: a custom layer.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Layer name, unique in the endpoint; `acl` is taken.
    pub name: Spanned<String>,
    /// Default for inbound packets no group decides: `allow` (default) or `block`.
    pub default_in: Option<Action>,
    /// Default for outbound packets no group decides: `allow` (default) or `block`.
    pub default_out: Option<Action>,
    /// Groups, visited in file order.
    #[serde(default)]
    pub group: Vec<Spanned<Group>>,
}

/// Match fields shared by a group's `condition` and a rule. Absent or empty = any.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Source IP prefixes.
    pub src_addresses: Option<Spanned<Items>>,
    /// Destination IP prefixes.
    pub dst_addresses: Option<Spanned<Items>>,
    /// Source ports or ranges.
    pub src_ports: Option<Spanned<Items>>,
    /// Destination ports or ranges.
    pub dst_ports: Option<Spanned<Items>>,
    /// Protocol names or numbers.
    pub protocols: Option<Spanned<Items>>,
    /// ICMP types, 0..=255.
    pub icmp_types: Option<Spanned<Items>>,
    /// ICMP codes, 0..=255.
    pub icmp_codes: Option<Spanned<Items>>,
    /// Source MACs.
    pub src_macs: Option<Spanned<Items>>,
    /// Destination MACs.
    pub dst_macs: Option<Spanned<Items>>,
    /// VLAN IDs, 1..=4094.
    pub vlans: Option<Spanned<Items>>,
    /// VNIs, 1..=16777215.
    pub vnis: Option<Spanned<Items>>,
}

/// `[[endpoint.layer.group]]`: a group of rules.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Group name, unique in the layer.
    pub name: Spanned<String>,
    /// `in`, `out` or `both` (default).
    pub direction: Option<GroupDirection>,
    /// Optional gate: the group is visited only by packets that match it.
    pub condition: Option<Spanned<Conditions>>,
    /// Rules; the best matching one (lowest priority, then first written) is selected.
    #[serde(default)]
    pub rule: Vec<Spanned<Rule>>,
}

/// `action = ...` of a custom rule.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    #[serde(alias = "Allow")]
    Allow,
    #[serde(alias = "Block")]
    Block,
    /// Source NAT; needs `snat = { ip, ports }`.
    Snat,
    /// Destination NAT; needs `dnat = { ip, port }`.
    Dnat,
    /// MAC rewrite; needs `set_mac = { src, dst }`.
    SetMac,
    /// Load balancing; needs `load_balancer = "NAME"`.
    LoadBalance,
}

impl RuleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Block => "block",
            RuleAction::Snat => "snat",
            RuleAction::Dnat => "dnat",
            RuleAction::SetMac => "set-mac",
            RuleAction::LoadBalance => "load-balance",
        }
    }
}

/// `snat = { ip = "...", ports = "1024-65535" }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SnatParams {
    /// The new source address.
    pub ip: Spanned<String>,
    /// Source ports to allocate from, `"LO-HI"` or one port, within 1..=65535; default
    /// `"1024-65535"`.
    pub ports: Option<Spanned<Scalar>>,
}

/// `dnat = { ip = "...", port = 80 }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DnatParams {
    /// The new destination address.
    pub ip: Spanned<String>,
    /// The new destination port, 1..=65535; absent = keep it.
    pub port: Option<Spanned<i64>>,
}

/// `set_mac = { src = "...", dst = "..." }`: at least one of them.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SetMacParams {
    /// New source MAC (unicast).
    pub src: Option<Spanned<String>>,
    /// New destination MAC.
    pub dst: Option<Spanned<String>>,
}

/// `[[endpoint.layer.group.rule]]`: a rule. It takes every field of [`Conditions`] too
/// (serde's `flatten` cannot be combined with `deny_unknown_fields`, hence the copy).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Rule id, unique in the group; default `rule<N>` (1-based position in the group).
    pub id: Option<Spanned<String>>,
    /// Lower wins; ties go to the rule written first. Default 100.
    pub priority: Option<Spanned<i64>>,
    /// `allow`, `block`, or a header transposition: `snat`, `dnat`, `set-mac`,
    /// `load-balance`, each with its parameter field below.
    pub action: Spanned<RuleAction>,
    /// Parameters of `action = "snat"`.
    pub snat: Option<Spanned<SnatParams>>,
    /// Parameters of `action = "dnat"`.
    pub dnat: Option<Spanned<DnatParams>>,
    /// Parameters of `action = "set-mac"`.
    pub set_mac: Option<Spanned<SetMacParams>>,
    /// The `[[load_balancer]]` name of `action = "load-balance"`.
    pub load_balancer: Option<Spanned<String>>,
    /// Decides the layer at once when selected; default false.
    #[serde(default)]
    pub terminating: bool,
    /// Records the connection so that replies pass; default false, and always true for a
    /// transposition (`stateful = false` is an error there).
    pub stateful: Option<Spanned<bool>>,
    pub src_addresses: Option<Spanned<Items>>,
    pub dst_addresses: Option<Spanned<Items>>,
    pub src_ports: Option<Spanned<Items>>,
    pub dst_ports: Option<Spanned<Items>>,
    pub protocols: Option<Spanned<Items>>,
    pub icmp_types: Option<Spanned<Items>>,
    pub icmp_codes: Option<Spanned<Items>>,
    pub src_macs: Option<Spanned<Items>>,
    pub dst_macs: Option<Spanned<Items>>,
    pub vlans: Option<Spanned<Items>>,
    pub vnis: Option<Spanned<Items>>,
}

impl Rule {
    /// The rule's match fields, as a [`Conditions`].
    pub fn conditions(&self) -> Conditions {
        Conditions {
            src_addresses: self.src_addresses.clone(),
            dst_addresses: self.dst_addresses.clone(),
            src_ports: self.src_ports.clone(),
            dst_ports: self.dst_ports.clone(),
            protocols: self.protocols.clone(),
            icmp_types: self.icmp_types.clone(),
            icmp_codes: self.icmp_codes.clone(),
            src_macs: self.src_macs.clone(),
            dst_macs: self.dst_macs.clone(),
            vlans: self.vlans.clone(),
            vnis: self.vnis.clone(),
        }
    }
}
