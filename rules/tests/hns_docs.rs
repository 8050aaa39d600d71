//! The examples of docs/hns.md, one policy together: each is read as the kind of
//! document the page says, they link as it says, and `import-hns` of them compiles to
//! the same policy.

use strata_rules::model::{Action, Distribution, Driver};
use strata_rules::policy::{self, Source};

const DOC: &str = include_str!("../../docs/hns.md");

/// `(name, text)` of every `<!-- example: NAME -->` block.
fn examples() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let mut rest = DOC;
    while let Some(at) = rest.find("<!-- example: ") {
        let after = &rest[at + 14..];
        let name = &after[..after.find(" -->").expect("end of the marker")];
        let body = &after[after.find("```").expect("a code block")..];
        let body = &body[body.find('\n').expect("fence line") + 1..];
        let end = body.find("```").expect("end of the code block");
        out.push((name, &body[..end]));
        rest = &body[end..];
    }
    out
}

#[test]
fn the_examples_of_docs_hns_make_one_policy() {
    let ex = examples();
    assert_eq!(
        ex.len(),
        9,
        "{:?}",
        ex.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    let sources: Vec<Source> = ex.iter().map(|(n, t)| Source::new(n, t)).collect();
    let l = policy::load_sources(&sources).unwrap_or_else(|e| panic!("{e}"));
    let p = &l.policy;
    let names: Vec<&str> = p.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["pod-a", "api", "web-1", "web-2"]);
    assert_eq!(
        p.network("l2").map(|n| (n.driver, n.vlan)),
        Some((Driver::L2Bridge, Some(7)))
    );
    assert_eq!(
        p.port("api").unwrap().mac,
        "02:11:c6:12:04:0a".parse().unwrap()
    );
    let ov = p.network("vxlan0").unwrap();
    assert_eq!(
        ov.remote_routes.len(),
        2,
        "the remote endpoint's host route, then the subnet route"
    );
    assert_eq!(
        ov.remote_routes[0].provider_address,
        "198.19.0.20".parse::<std::net::IpAddr>().unwrap()
    );
    let lbs: Vec<(&str, usize)> = p
        .load_balancers
        .iter()
        .map(|b| (b.lb.name.as_str(), b.lb.backends.len()))
        .collect();
    assert_eq!(lbs, [("svc-web", 2), ("svc-dns", 1)]);
    assert_eq!(p.load_balancers[1].lb.distribution, Distribution::SourceIp);
    // pod-a gets the CNI template; every endpoint gets Calico's rule first.
    let pod = p.port("pod-a").unwrap();
    let layers: Vec<&str> = pod.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(layers, ["acl", "lb", "nat", "route"]);
    let out: Vec<&str> = pod.layers[0].groups[0]
        .rules
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(out, ["no-metadata", "template-acl1"]);
    assert!(matches!(
        pod.layers[2].groups[0].rules[1].action,
        Action::Snat { .. }
    ));
    let warnings: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
    for expected in [
        "network-v1.json:5:3: network \"vxlan0\": `NetworkAdapterName` is not used",
        "endpoint-v2.json:10:6: endpoint \"web-1\": QOS policy is not applied",
        "cni.conf:6:3: CNI configuration \"cbr0\": `dns` is not used",
    ] {
        assert!(
            warnings.iter().any(|w| w.starts_with(expected)),
            "{expected}: {warnings:#?}"
        );
    }
    let (toml, _) = policy::import_hns(&sources).unwrap();
    assert_eq!(
        &policy::load(&toml, "imported.toml").unwrap_or_else(|e| panic!("{e}\n{toml}")),
        p
    );
}
