//! FRR configuration text -> ordered tree of contexts (like frr-reload.py's model).
//!
//! Accepts both the rendered (frr-k8s templates: indentation optional, no `exit` lines)
//! and the `show running-config` form (`exit`, `exit-address-family`, `!`, `end`).
//! Lines are whitespace-normalised and deduplicated per context; repeated context headers
//! (e.g. several `address-family ipv4 unicast` blocks) are merged.

/// One context: a header (`router bgp 64512`, `route-map X permit 1`, `profile fast`),
/// its own lines in order, and nested contexts in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// Empty for the root.
    pub header: String,
    pub lines: Vec<String>,
    pub children: Vec<Context>,
}

impl Context {
    fn new(header: &str) -> Self {
        Context {
            header: header.to_string(),
            ..Default::default()
        }
    }

    /// The child with this header.
    pub fn child(&self, header: &str) -> Option<&Context> {
        self.children.iter().find(|c| c.header == header)
    }

    fn child_index_or_insert(&mut self, header: &str) -> usize {
        match self.children.iter().position(|c| c.header == header) {
            Some(i) => i,
            None => {
                self.children.push(Context::new(header));
                self.children.len() - 1
            }
        }
    }

    /// Appends a line; duplicates are removed once parsing is done ([`Context::dedup`]),
    /// because checking on every push is quadratic in a 10,000-line address family.
    fn push_line(&mut self, line: String) {
        self.lines.push(line);
    }

    /// Drops repeated lines (keeping the first) here and in every nested context.
    fn dedup(&mut self) {
        let mut seen = std::collections::HashSet::with_capacity(self.lines.len());
        self.lines.retain(|l| seen.insert(l.clone()));
        for c in &mut self.children {
            c.dedup();
        }
    }

    /// Whether `line` is one of this context's own lines.
    pub fn has_line(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }

    /// Number of lines in this context and all nested ones (headers included).
    pub fn size(&self) -> usize {
        self.lines.len() + self.children.iter().map(|c| 1 + c.size()).sum::<usize>()
    }
}

/// A parsed FRR configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrrConfig {
    pub root: Context,
}

/// What kind of context a header opens (decides nesting, exits and `no` forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextKind {
    Root,
    RouterBgp,
    AddressFamily,
    Vni,
    RouteMap,
    Bfd,
    BfdProfile,
    BfdPeer,
    Vrf,
    Interface,
    Other,
}

/// The kind of a context header.
pub fn kind_of(header: &str) -> ContextKind {
    let w: Vec<&str> = header.split_whitespace().collect();
    match w.as_slice() {
        [] => ContextKind::Root,
        ["router", "bgp", ..] => ContextKind::RouterBgp,
        ["address-family", ..] => ContextKind::AddressFamily,
        ["vni", ..] => ContextKind::Vni,
        ["route-map", ..] => ContextKind::RouteMap,
        ["bfd"] => ContextKind::Bfd,
        ["profile", ..] => ContextKind::BfdProfile,
        ["peer", ..] => ContextKind::BfdPeer,
        ["vrf", ..] => ContextKind::Vrf,
        ["interface", ..] => ContextKind::Interface,
        _ => ContextKind::Other,
    }
}

/// Does `line` open a nested context when it appears directly inside `parent`?
fn opens_context(parent: ContextKind, line: &str) -> bool {
    let w: Vec<&str> = line.split_whitespace().collect();
    match parent {
        ContextKind::Root => matches!(
            w.as_slice(),
            ["router", ..]
                | ["route-map", _, _, _]
                | ["bfd"]
                | ["interface", ..]
                | ["vrf", _]
                | ["line", "vty"]
                | ["key", "chain", _]
                | ["segment-routing"]
                | ["nexthop-group", _]
                | ["mpls", "ldp"]
        ),
        ContextKind::RouterBgp => matches!(w.as_slice(), ["address-family", ..]),
        ContextKind::AddressFamily => matches!(w.as_slice(), ["vni", _]),
        ContextKind::Bfd => matches!(w.as_slice(), ["profile", _] | ["peer", ..]),
        _ => false,
    }
}

/// Lines that only exist at the top level: seeing one unindented closes open contexts
/// (the rendered form has no `exit` lines).
fn is_top_level_line(line: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "ip prefix-list ",
        "ipv6 prefix-list ",
        "ip nht ",
        "ipv6 nht ",
        "ip route ",
        "ipv6 route ",
        "ip forwarding",
        "ipv6 forwarding",
        "no ip forwarding",
        "no ipv6 forwarding",
        "ip protocol ",
        "ipv6 protocol ",
        "log ",
        "no log ",
        "hostname ",
        "frr ",
        "service ",
        "no service ",
        "debug ",
        "bgp community-list ",
        "bgp large-community-list ",
        "bgp extcommunity-list ",
        "bgp as-path ",
        "bgp route-map delay-timer",
        "bgp send-extra-data",
        "agentx",
        "access-list ",
        "password ",
        "enable password ",
        "zebra ",
    ];
    PREFIXES.iter().any(|p| line.starts_with(p))
}

/// Lines that carry no configuration.
fn is_noise(line: &str) -> bool {
    line.is_empty()
        || line.starts_with('!')
        || line.starts_with('#')
        || line == "Building configuration..."
        || line == "Current configuration:"
        || line == "configure terminal"
        || line == "configure"
}

impl FrrConfig {
    /// Parses configuration text. Never fails: unknown lines are kept in the context
    /// they appear in (FRR itself is the judge of their validity).
    pub fn parse(text: &str) -> FrrConfig {
        let mut root = Context::default();
        // path of child indexes from the root
        let mut stack: Vec<usize> = Vec::new();
        for raw in text.lines() {
            let indented = raw.starts_with(' ') || raw.starts_with('\t');
            let line = raw.split_whitespace().collect::<Vec<_>>().join(" ");
            if is_noise(&line) {
                continue;
            }
            match line.as_str() {
                "end" => {
                    stack.clear();
                    continue;
                }
                "exit-address-family" | "exit-vni" => {
                    // pop up to (and including) the innermost address-family / vni
                    while let Some(_i) = stack.last() {
                        let kind = kind_of(&node_at(&root, &stack).header);
                        stack.pop();
                        if matches!(kind, ContextKind::AddressFamily | ContextKind::Vni) {
                            break;
                        }
                    }
                    continue;
                }
                "exit-vrf" => {
                    stack.clear();
                    continue;
                }
                "exit" | "quit" => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            if !indented && (is_top_level_line(&line) || opens_context(ContextKind::Root, &line)) {
                stack.clear();
            }
            // find the innermost open context (or an ancestor) this line opens a child of
            let mut depth = stack.len();
            let mut opened = false;
            loop {
                let parent_kind = kind_of(&node_at(&root, &stack[..depth]).header);
                if opens_context(parent_kind, &line) {
                    stack.truncate(depth);
                    let parent = node_at_mut(&mut root, &stack);
                    let idx = parent.child_index_or_insert(&line);
                    stack.push(idx);
                    opened = true;
                    break;
                }
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            if !opened {
                node_at_mut(&mut root, &stack).push_line(line);
            }
        }
        root.dedup();
        FrrConfig { root }
    }

    /// Renders the tree back to text `vtysh -f` accepts (with explicit exits).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for l in &self.root.lines {
            out.push_str(l);
            out.push('\n');
        }
        for c in &self.root.children {
            write_context(&mut out, c, 0);
        }
        out
    }

    /// Total number of lines.
    pub fn size(&self) -> usize {
        self.root.size()
    }

    /// The `router bgp` contexts.
    pub fn routers(&self) -> impl Iterator<Item = &Context> {
        self.root
            .children
            .iter()
            .filter(|c| kind_of(&c.header) == ContextKind::RouterBgp)
    }
}

fn node_at<'a>(root: &'a Context, path: &[usize]) -> &'a Context {
    path.iter().fold(root, |c, &i| &c.children[i])
}

fn node_at_mut<'a>(root: &'a mut Context, path: &[usize]) -> &'a mut Context {
    path.iter().fold(root, |c, &i| &mut c.children[i])
}

/// The line that leaves a context of this kind.
pub fn exit_line(kind: ContextKind) -> &'static str {
    match kind {
        ContextKind::AddressFamily => "exit-address-family",
        ContextKind::Vni => "exit-vni",
        ContextKind::Vrf => "exit-vrf",
        _ => "exit",
    }
}

pub(crate) fn write_context(out: &mut String, c: &Context, depth: usize) {
    let pad = " ".repeat(depth);
    out.push_str(&pad);
    out.push_str(&c.header);
    out.push('\n');
    for l in &c.lines {
        out.push_str(&pad);
        out.push(' ');
        out.push_str(l);
        out.push('\n');
    }
    for ch in &c.children {
        write_context(out, ch, depth + 1);
    }
    out.push_str(&pad);
    out.push_str(exit_line(kind_of(&c.header)));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "log stdout informational
log timestamp precision 3
hostname node-a
ip prefix-list 10.0.0.1-allowed-ipv4 seq 1 permit 198.18.0.1/32
route-map 10.0.0.1-out permit 1
  match ip address prefix-list 10.0.0.1-allowed-ipv4
ipv6 prefix-list 10.0.0.1-allowed-ipv6 seq 1 deny any
route-map 10.0.0.1-out permit 2
  match ipv6 address prefix-list 10.0.0.1-allowed-ipv6

router bgp 64512
  no bgp ebgp-requires-policy
  neighbor 10.0.0.1 remote-as 64600
  neighbor 10.0.0.1 bfd
  neighbor 10.0.0.1 bfd profile fast
  address-family ipv4 unicast
    neighbor 10.0.0.1 activate
    neighbor 10.0.0.1 route-map 10.0.0.1-out out
  exit-address-family
  address-family ipv4 unicast
    network 198.18.0.1/32
  exit-address-family
router bgp 64512 vrf red
  neighbor 10.0.0.2 remote-as 64600
bfd
  profile fast
    receive-interval 100
  profile slow
    transmit-interval 900
";

    #[test]
    fn parses_rendered_form_without_exits() {
        let c = FrrConfig::parse(RENDERED);
        assert_eq!(
            c.root.lines,
            vec![
                "log stdout informational",
                "log timestamp precision 3",
                "hostname node-a",
                "ip prefix-list 10.0.0.1-allowed-ipv4 seq 1 permit 198.18.0.1/32",
                "ipv6 prefix-list 10.0.0.1-allowed-ipv6 seq 1 deny any",
            ]
        );
        let headers: Vec<&str> = c.root.children.iter().map(|c| c.header.as_str()).collect();
        assert_eq!(
            headers,
            vec![
                "route-map 10.0.0.1-out permit 1",
                "route-map 10.0.0.1-out permit 2",
                "router bgp 64512",
                "router bgp 64512 vrf red",
                "bfd"
            ]
        );
        let rb = c.root.child("router bgp 64512").unwrap();
        assert_eq!(rb.lines.len(), 4);
        // the two address-family blocks are merged
        assert_eq!(rb.children.len(), 1);
        assert_eq!(
            rb.children[0].lines,
            vec![
                "neighbor 10.0.0.1 activate",
                "neighbor 10.0.0.1 route-map 10.0.0.1-out out",
                "network 198.18.0.1/32"
            ]
        );
        let bfd = c.root.child("bfd").unwrap();
        assert_eq!(bfd.children.len(), 2);
        assert_eq!(bfd.children[1].lines, vec!["transmit-interval 900"]);
    }

    #[test]
    fn parses_running_config_form() {
        let text = "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\n\
frr defaults traditional\nhostname vm\n!\nrouter bgp 64512\n no bgp ebgp-requires-policy\n \
neighbor 10.0.0.1 remote-as 64600\n !\n address-family ipv4 unicast\n  network 198.18.0.1/32\n \
exit-address-family\nexit\n!\nip prefix-list a seq 1 permit 198.18.0.1/32\n!\n\
route-map 10.0.0.1-out permit 1\n match ip address prefix-list a\nexit\n!\nbfd\n profile fast\n  \
transmit-interval 100\n exit\n !\nexit\n!\nend\n";
        let c = FrrConfig::parse(text);
        assert_eq!(
            c.root.lines,
            vec![
                "frr version 8.4.4",
                "frr defaults traditional",
                "hostname vm",
                "ip prefix-list a seq 1 permit 198.18.0.1/32"
            ]
        );
        let rb = c.root.child("router bgp 64512").unwrap();
        assert_eq!(rb.children[0].lines, vec!["network 198.18.0.1/32"]);
        assert_eq!(
            c.root.child("bfd").unwrap().children[0].lines,
            vec!["transmit-interval 100"]
        );
    }

    #[test]
    fn round_trips_through_text() {
        let c = FrrConfig::parse(RENDERED);
        let again = FrrConfig::parse(&c.to_text());
        assert_eq!(c, again);
    }

    #[test]
    fn evpn_vni_and_vrf_contexts() {
        let text = "vrf red\n vni 100\nexit-vrf\nrouter bgp 64512\n address-family l2vpn evpn\n  \
advertise-all-vni\n  vni 10\n   rd 1:1\n  exit-vni\n exit-address-family\nexit\n";
        let c = FrrConfig::parse(text);
        assert_eq!(c.root.child("vrf red").unwrap().lines, vec!["vni 100"]);
        let af = &c.root.child("router bgp 64512").unwrap().children[0];
        assert_eq!(af.lines, vec!["advertise-all-vni"]);
        assert_eq!(af.children[0].header, "vni 10");
        assert_eq!(af.children[0].lines, vec!["rd 1:1"]);
    }
}
