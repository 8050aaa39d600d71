//! Edits against the bundled example policy, in TOML and in HNS JSON.

use super::*;

const TOML: &str = include_str!("../../../examples/policy.toml");
const HNS: &str = include_str!("../../../examples/policy.hns.json");

const EXTRA: &str = r#"# a container started by CNI
[[endpoint]]
name = "extra"
network = "nat"
mac = "00:15:5d:01:01:20"
ipv4 = "198.18.1.20"
interface = "veth-extra"

[[endpoint.acl]]
id = "no-ssh"
action = "block"
direction = "in"
protocols = ["tcp"]
local_ports = ["22"]
"#;

fn base() -> PolicyState {
    PolicyState::new(Document::new("policy.toml", TOML)).unwrap()
}

fn errors(r: Refusal) -> Vec<PolicyError> {
    match r {
        Refusal::Invalid(e) => e.0,
        Refusal::Request(m) => panic!("expected policy errors, got {m}"),
    }
}

#[test]
fn an_added_endpoint_gets_the_layers_the_file_would_give_it() {
    let s = base()
        .edit(Edit::EndpointAdd(Document::new("extra.toml", EXTRA)))
        .unwrap();
    let whole = policy::load(&format!("{TOML}\n{EXTRA}"), "p").unwrap();
    assert_eq!(s.current().port("extra"), whole.port("extra"));
    assert_eq!(s.current().ports.len(), 5);
    assert_eq!(s.current().port("db"), whole.port("db"));
}

#[test]
fn fragment_errors_name_the_fragments_own_lines() {
    let bad = EXTRA.replace("198.18.1.20", "198.18.9.20");
    let e = errors(
        base()
            .edit(Edit::EndpointAdd(Document::new("extra.toml", bad)))
            .unwrap_err(),
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].file.as_str(), e[0].line),
        ("extra.toml", 6),
        "{}",
        e[0]
    );
    assert!(e[0].message.contains("outside the subnets"), "{}", e[0]);

    let syntax = errors(
        base()
            .edit(Edit::EndpointAdd(Document::new(
                "x.toml",
                "[[endpoint]]\nname = \n",
            )))
            .unwrap_err(),
    );
    assert_eq!((syntax[0].line, syntax[0].object.as_str()), (2, "TOML"));
}

#[test]
fn newcomers_must_not_clash_with_running_endpoints() {
    let clash = EXTRA.replace("198.18.1.20", "198.18.1.11");
    let e = errors(
        base()
            .edit(Edit::EndpointAdd(Document::new("extra.toml", clash)))
            .unwrap_err(),
    );
    assert!(
        e.iter()
            .any(|e| e.line == 6 && e.message.contains("\"db\"")),
        "{e:?}"
    );
    let again = base()
        .edit(Edit::EndpointAdd(Document::new("a.toml", EXTRA)))
        .unwrap()
        .edit(Edit::EndpointAdd(Document::new("b.toml", EXTRA)))
        .unwrap_err();
    assert!(
        errors(again)
            .iter()
            .any(|e| e.message.contains("already attached"))
    );
}

#[test]
fn fragments_hold_only_what_they_may() {
    for text in [
        "[host]\nmac = \"02:00:00:00:00:09\"\n",
        "name = \"x\"\n[[endpoint]]\nname = \"y\"\n",
        "",
    ] {
        let r = base().edit(Edit::EndpointAdd(Document::new("f.toml", text)));
        assert!(matches!(r, Err(Refusal::Invalid(_))), "{text:?}: {r:?}");
    }
    let json = base().edit(Edit::EndpointAdd(Document::new("f.json", "{}")));
    assert!(matches!(json, Err(Refusal::Invalid(_))), "{json:?}");
    let network = r#"{"Networks": [{"Name": "n2", "Type": "NAT"}]}"#;
    let r = base().edit(Edit::EndpointAdd(Document::new("f.json", network)));
    assert!(matches!(r, Err(Refusal::Invalid(_))), "{r:?}");
}

#[test]
fn rules_are_added_and_removed_as_whole_groups() {
    let acl = "[[acl]]\nid = \"allow-ssh\"\naction = \"allow\"\ndirection = \"in\"\n\
               protocols = [\"tcp\"]\nlocal_ports = [\"22\"]\npriority = 50\n";
    let s = base()
        .edit(Edit::RuleAdd {
            port: "db".into(),
            document: Document::new("ssh.toml", acl),
        })
        .unwrap();
    let group = |s: &PolicyState, g: &str| {
        let p = s.current().port("db").unwrap();
        let l = p.layers.iter().find(|l| l.name == ACL_LAYER).unwrap();
        let g = l.groups.iter().find(|x| x.name == g).unwrap();
        g.rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        group(&s, ACL_IN_GROUP),
        ["allow-web-pg", "block-pg", "allow-ssh"]
    );
    assert_eq!(s.current().port("web"), base().current().port("web"));

    let dup = s.edit(Edit::RuleAdd {
        port: "db".into(),
        document: Document::new("ssh.toml", acl),
    });
    let e = errors(dup.unwrap_err());
    assert_eq!(
        (e[0].line, e[0].message.contains("already has")),
        (2, true),
        "{e:?}"
    );

    let s = s
        .edit(Edit::RuleRemove {
            port: "db".into(),
            rule: "block-pg".into(),
            layer: None,
            group: None,
        })
        .unwrap();
    assert_eq!(group(&s, ACL_IN_GROUP), ["allow-web-pg", "allow-ssh"]);
    assert!(matches!(
        s.edit(Edit::RuleRemove {
            port: "db".into(),
            rule: "nope".into(),
            layer: None,
            group: None
        }),
        Err(Refusal::Request(_))
    ));
    // The ACL's own mistakes point at its lines.
    let bad = acl.replace("\"22\"", "\"99999\"");
    let e = errors(
        base()
            .edit(Edit::RuleAdd {
                port: "db".into(),
                document: Document::new("ssh.toml", bad),
            })
            .unwrap_err(),
    );
    assert_eq!((e[0].file.as_str(), e[0].line), ("ssh.toml", 6), "{e:?}");
}

#[test]
fn apply_keeps_added_endpoints_and_drops_edits_of_the_files_own() {
    let s = base()
        .edit(Edit::EndpointAdd(Document::new("extra.toml", EXTRA)))
        .unwrap()
        .edit(Edit::RuleRemove {
            port: "extra".into(),
            rule: "no-ssh".into(),
            layer: None,
            group: None,
        })
        .unwrap()
        .edit(Edit::EndpointRemove("client".into()))
        .unwrap();
    assert!(s.current().port("client").is_none());
    let edited = TOML.replace("remote_ports = [\"23\"]", "remote_ports = [\"23\", \"21\"]");
    let next = s.apply(Document::new("policy.toml", edited)).unwrap();
    assert!(
        next.current().port("client").is_some(),
        "the new file restates client"
    );
    let extra = next.current().port("extra").unwrap();
    assert!(
        extra.layers[0].groups.iter().all(|g| g.rules.is_empty()),
        "no-ssh stays removed"
    );
    // A new file that no longer has the added endpoint's network is refused.
    let without_nat = PolicyState::new(Document::new("policy.toml", TOML))
        .unwrap()
        .edit(Edit::EndpointAdd(Document::new(
            "o.toml",
            EXTRA
                .replace("\"nat\"", "\"overlay\"")
                .replace("198.18.1.20", "198.18.2.20"),
        )))
        .unwrap();
    let cut = TOML.replace("name = \"overlay\"", "name = \"overlay2\"");
    assert!(without_nat.apply(Document::new("p.toml", cut)).is_err());
    // Removing an added endpoint forgets its edits.
    let s = base()
        .edit(Edit::EndpointAdd(Document::new("extra.toml", EXTRA)))
        .unwrap()
        .edit(Edit::EndpointRemove("extra".into()))
        .unwrap();
    assert!(s.edits().is_empty());
}

#[test]
fn hns_endpoints_and_acls_go_to_an_hns_policy() {
    let s = PolicyState::new(Document::new("hns.json", HNS)).unwrap();
    let ep = r#"{"Name": "extra", "VirtualNetworkName": "nat", "MacAddress": "00-15-5D-01-01-20",
  "IPAddress": "198.18.1.20",
  "Policies": [{"Type": "ACL", "Settings": {"Id": "no-ssh", "Action": "Block",
     "Direction": "In", "Protocols": "6", "LocalPorts": "22", "Priority": 100}}]}"#;
    let s = s
        .edit(Edit::EndpointAdd(Document::new("ep.json", ep)))
        .unwrap();
    let toml = base()
        .edit(Edit::EndpointAdd(Document::new("extra.toml", EXTRA)))
        .unwrap();
    let (a, b) = (
        s.current().port("extra").unwrap(),
        toml.current().port("extra").unwrap(),
    );
    assert_eq!(a.layers, b.layers);

    let acl = r#"{"Type": "ACL", "Settings": {"Id": "allow-ssh", "Action": "Allow",
  "Direction": "In", "Protocols": "6", "LocalPorts": "22", "Priority": 50}}"#;
    let s = s
        .edit(Edit::RuleAdd {
            port: "web".into(),
            document: Document::new("acl.json", acl),
        })
        .unwrap();
    let web = s.current().port("web").unwrap();
    assert_eq!(web.layers[0].groups[1].rules[0].id, "allow-ssh");

    let bad = acl.replace("\"6\"", "\"tcpx\"");
    let e = errors(
        s.edit(Edit::RuleAdd {
            port: "web".into(),
            document: Document::new("acl.json", bad),
        })
        .unwrap_err(),
    );
    assert_eq!((e[0].file.as_str(), e[0].line), ("acl.json", 2), "{e:?}");
    let e = errors(
        s.edit(Edit::EndpointAdd(Document::new("x.json", "{\"Name\": ")))
            .unwrap_err(),
    );
    assert_eq!(e[0].object, "JSON");
}

#[test]
fn an_attached_endpoint_is_written_in_the_running_policys_format() {
    let spec = EndpointSpec {
        name: "cni-1234".into(),
        network: "nat".into(),
        mac: "00:15:5d:01:01:21".into(),
        ipv4: Some("198.18.1.21".into()),
        ipv6: None,
        interface: Some("st0123".into()),
    };
    let toml = base().edit(Edit::EndpointAttach(spec.clone())).unwrap();
    let hns = PolicyState::new(Document::new("hns.json", HNS))
        .unwrap()
        .edit(Edit::EndpointAttach(spec.clone()))
        .unwrap();
    let (a, b) = (
        toml.current().port("cni-1234").unwrap(),
        hns.current().port("cni-1234").unwrap(),
    );
    assert_eq!(a.layers, b.layers);
    assert_eq!(a.interface.as_deref(), Some("st0123"));
    assert_eq!(b.interface.as_deref(), Some("st0123"));
    // Kept across a new file, forgotten once removed.
    let next = toml.apply(Document::new("policy.toml", TOML)).unwrap();
    assert!(next.current().port("cni-1234").is_some());
    let gone = next.edit(Edit::EndpointRemove("cni-1234".into())).unwrap();
    assert!(gone.edits().is_empty());
    let bad = EndpointSpec {
        ipv4: Some("10.0.0.1".into()),
        ..spec
    };
    assert!(matches!(
        base().edit(Edit::EndpointAttach(bad)),
        Err(Refusal::Invalid(_))
    ));
}

#[test]
fn fragments_link_with_a_base_of_the_other_format_or_of_several_files() {
    let ep = r#"{"Name": "extra", "VirtualNetworkName": "nat", "MacAddress": "00-15-5D-01-01-20",
  "IPAddress": "198.18.1.20", "Interface": "veth-extra",
  "Policies": [{"Type": "ACL", "Settings": {"Id": "no-ssh", "Action": "Block",
     "Direction": "In", "Protocols": "6", "LocalPorts": "22"}}]}"#;
    let from_toml = base()
        .edit(Edit::EndpointAdd(Document::new("extra.toml", EXTRA)))
        .unwrap();
    let mixed = base()
        .edit(Edit::EndpointAdd(Document::new("ep.json", ep)))
        .unwrap();
    assert_eq!(
        mixed.current().port("extra").map(|p| &p.layers),
        from_toml.current().port("extra").map(|p| &p.layers)
    );
    // An HNS base, a TOML ACL.
    let acl = "[[acl]]\nid = \"allow-ssh\"\naction = \"allow\"\ndirection = \"in\"\n\
               protocols = [\"tcp\"]\nlocal_ports = [\"22\"]\npriority = 50\n";
    let s = PolicyState::new(Document::new("hns.json", HNS))
        .unwrap()
        .edit(Edit::RuleAdd {
            port: "web".into(),
            document: Document::new("ssh.toml", acl),
        })
        .unwrap();
    let web = s.current().port("web").unwrap();
    assert_eq!(web.layers[0].groups[1].rules[0].id, "allow-ssh");
    // A base of two files: the host and networks in TOML, an endpoint in HNS JSON.
    let host = TOML.split("[[endpoint]]").next().unwrap().to_string();
    let two = PolicyState::of_files(vec![
        Document::new("host.toml", host),
        Document::new("ep.json", ep),
    ])
    .unwrap();
    assert!(two.current().port("extra").is_some());
    let s = two
        .edit(Edit::EndpointAdd(Document::new(
            "more.toml",
            EXTRA
                .replace("\"extra\"", "\"more\"")
                .replace("01:20", "01:21")
                .replace("1.20", "1.21"),
        )))
        .unwrap();
    assert!(s.current().port("more").is_some());
    let bad = s.edit(Edit::EndpointAdd(Document::new(
        "bad.toml",
        "[[endpoint]]\nname = \"z\"\nnetwork = \"nope\"\nmac = \"00:15:5d:01:01:30\"\nipv4 = \"198.18.1.30\"\n",
    )));
    let e = errors(bad.unwrap_err());
    assert_eq!((e[0].file.as_str(), e[0].line), ("bad.toml", 3), "{e:?}");
}
