//! The frameworks and controls that security-awareness training satisfies, with the
//! requirement each one asks of people by default. Titles are ours: short descriptions of
//! each control's subject, never a standard's text.

use super::requirement::RequirementKind::{self, *};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Framework {
    /// As the API names it (`soc2`).
    pub id: &'static str,
    pub title: &'static str,
}

pub const FRAMEWORKS: &[Framework] = &[
    Framework {
        id: "soc2",
        title: "SOC 2 (2017 Trust Services Criteria)",
    },
    Framework {
        id: "iso27001",
        title: "ISO/IEC 27001:2022",
    },
    Framework {
        id: "nist-800-53",
        title: "NIST SP 800-53 Rev. 5",
    },
    Framework {
        id: "nist-csf",
        title: "NIST Cybersecurity Framework 2.0",
    },
    Framework {
        id: "hipaa",
        title: "HIPAA Security Rule",
    },
    Framework {
        id: "pci-dss",
        title: "PCI DSS v4.0.1",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Control {
    pub framework: &'static str,
    /// The identifier as the standard writes it (`CC1.4`, `12.6.3.1`).
    pub id: &'static str,
    pub title: &'static str,
    /// The requirement it asks of people unless an admin maps it otherwise.
    pub requirement: RequirementKind,
}

const fn control(
    framework: &'static str,
    id: &'static str,
    title: &'static str,
    requirement: RequirementKind,
) -> Control {
    Control {
        framework,
        id,
        title,
        requirement,
    }
}

#[rustfmt::skip]
pub const CONTROLS: &[Control] = &[
    control("soc2", "CC1.4", "Personnel are trained to build and keep competence", Awareness),
    control("soc2", "CC2.2", "Security responsibilities are communicated, awareness training included", Awareness),
    control("iso27001", "A.6.3", "Security awareness, education and training", Awareness),
    control("iso27001", "7.2", "Competence, with records of training", Awareness),
    control("iso27001", "7.3", "People are aware of the security policy and their part in it", Awareness),
    control("nist-800-53", "AT-2", "Literacy training and awareness", Awareness),
    control("nist-800-53", "AT-2.a.2", "Training after organisation-defined events", EventTriggered),
    control("nist-800-53", "AT-2(2)", "Literacy training on insider threat", Awareness),
    control("nist-800-53", "AT-2(3)", "Literacy training on social engineering and mining", Phishing),
    control("nist-800-53", "AT-3", "Role-based training", RoleBased),
    control("nist-800-53", "AT-4", "Training records kept and monitored per person", Awareness),
    control("nist-csf", "PR.AT-01", "Personnel are aware and trained for their tasks", Awareness),
    control("nist-csf", "PR.AT-02", "People in specialised roles are trained for them", RoleBased),
    control("hipaa", "164.308(a)(5)(i)", "A security awareness and training programme for the workforce", Awareness),
    control("hipaa", "164.308(a)(5)(ii)(A)", "Periodic security reminders", Awareness),
    control("hipaa", "164.308(a)(5)(ii)(B)", "Protection from malicious software", Awareness),
    control("hipaa", "164.308(a)(5)(ii)(C)", "Log-in monitoring", Awareness),
    control("hipaa", "164.308(a)(5)(ii)(D)", "Password management", Awareness),
    control("pci-dss", "12.6.1", "A formal security awareness programme", Awareness),
    control("pci-dss", "12.6.2", "The programme is reviewed at least every 12 months", Awareness),
    control("pci-dss", "12.6.3", "Training on hire and at least once every 12 months", Awareness),
    control("pci-dss", "12.6.3.1", "Training on phishing and social engineering", Phishing),
    control("pci-dss", "12.6.3.2", "Training on acceptable use of end-user technologies", Policy),
];

pub fn framework(id: &str) -> Option<&'static Framework> {
    FRAMEWORKS.iter().find(|f| f.id == id)
}

pub fn controls_of(framework: &str) -> impl Iterator<Item = &'static Control> + '_ {
    CONTROLS.iter().filter(move |c| c.framework == framework)
}

pub fn control_of(framework: &str, id: &str) -> Option<&'static Control> {
    controls_of(framework).find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_belongs_to_a_framework_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in CONTROLS {
            assert!(framework(c.framework).is_some(), "{}", c.framework);
            assert!(seen.insert((c.framework, c.id)), "{} {}", c.framework, c.id);
        }
        for f in FRAMEWORKS {
            assert!(controls_of(f.id).count() > 0, "{}", f.id);
        }
    }
}
