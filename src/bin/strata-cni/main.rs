//! `strata-cni`: a CNI 1.0 plugin (ADD, DEL, CHECK, VERSION) that attaches containers to a
//! running Strata service, as `"type": "strata-cni"` in a podman, containerd or Kubernetes
//! network configuration (DESIGN §4).
//!
//! ADD creates a veth pair — the container's end moved into `CNI_NETNS` and named
//! `CNI_IFNAME`, the host's end (`st` + a hash of the container id) left in the host
//! namespace for Strata — asks the IPAM plugin of the configuration (`host-local`, like
//! the standard plugins) for addresses, configures them with the routes, and attaches the
//! endpoint to the service over its control socket (configuration keys `socket`, default
//! `/run/strata/strata.sock`, and `network`, the Strata network, default the
//! configuration's `name`). DEL detaches it, deletes the veth and releases the addresses;
//! it succeeds when there is nothing left to do. Errors are CNI error objects on stdout
//! with a non-zero exit.
//!
//! Interfaces are configured with `ip` (iproute2) and `nsenter`; segmentation offloads
//! are turned off with `ethtool` where it is installed, so that Strata sees frames no
//! larger than the MTU.

#[cfg(unix)]
mod plugin;

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    plugin::main()
}

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    println!(r#"{{"cniVersion":"1.0.0","code":100,"msg":"strata-cni runs on Linux hosts"}}"#);
    std::process::ExitCode::from(1)
}
