//! Who may decide a just-in-time approval (DESIGN point 5): the four-eyes rule and the
//! approver list, as one pure function of the approval's parties and the person deciding.
//!
//! The API and the console both call [`may_decide`] before they try to record a decision;
//! the record itself is then changed by one compare-and-set in the store, so that of several
//! people deciding at once exactly one decision stands.

use crate::policy::HumanMatch;

use super::grant::Human;

/// Why a person may not decide an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// They are the human the agent acts for: nobody approves their own agent's request.
    OwnRequest,
    /// The approval's list (from the channel grant) does not name them or a group of theirs.
    NotAnApprover,
}

impl Refusal {
    /// The reason, as shown to the person (fixed text, no input echoed).
    pub const fn describe(self) -> &'static str {
        match self {
            Self::OwnRequest => "the human an agent acts for cannot approve its request",
            Self::NotAnApprover => "this human is not an approver of this action",
        }
    }
}

/// The parties of one approval, as recorded when the agent asked.
#[derive(Debug, Clone, Copy)]
pub struct Parties<'a> {
    /// The subject of the human the agent acts for.
    pub human: &'a str,
    /// Every other name of that human (email, user name).
    pub human_names: &'a [String],
    /// Who may approve.
    pub approvers: &'a [HumanMatch],
}

/// Whether `decider` (subject `decider_sub`) may approve or deny. Four eyes first: the
/// acting human is refused even when an approver list names them.
pub fn may_decide(p: Parties<'_>, decider_sub: &str, decider: &Human) -> Result<(), Refusal> {
    let is_acting_human = decider_sub == p.human
        || p.human_names.iter().any(|n| n == decider_sub)
        || decider.names.iter().any(|n| n == p.human)
        || decider.names.iter().any(|n| p.human_names.contains(n));
    if is_acting_human {
        return Err(Refusal::OwnRequest);
    }
    if p.approvers.iter().any(|who| decider.matches(who)) {
        Ok(())
    } else {
        Err(Refusal::NotAnApprover)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(names: &[&str], groups: &[&str]) -> Human {
        Human {
            sub: names.first().map(|s| (*s).to_owned()).unwrap_or_default(),
            names: names.iter().map(|s| (*s).to_owned()).collect(),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn parties<'a>(names: &'a [String], approvers: &'a [HumanMatch]) -> Parties<'a> {
        Parties {
            human: "alice",
            human_names: names,
            approvers,
        }
    }

    /// One row: who decides, their names, their groups, the expected answer.
    type Row<'a> = (&'a str, &'a [&'a str], &'a [&'a str], Result<(), Refusal>);

    /// One row per rule.
    #[test]
    fn four_eyes_and_approver_list_table() {
        let names = vec!["alice".to_owned(), "alice@acme.example".to_owned()];
        let approvers = vec![
            HumanMatch::Group("leads".into()),
            HumanMatch::User("carol@acme.example".into()),
        ];
        let rows: &[Row<'_>] = &[
            ("carol", &["carol", "carol@acme.example"], &[], Ok(())),
            ("dave", &["dave"], &["leads"], Ok(())),
            ("erin", &["erin"], &["eng"], Err(Refusal::NotAnApprover)),
            // The acting human, even though a group of theirs is on the list.
            ("alice", &["alice"], &["leads"], Err(Refusal::OwnRequest)),
            // The decider's subject is one of the acting human's other names.
            (
                "alice@acme.example",
                &[],
                &["leads"],
                Err(Refusal::OwnRequest),
            ),
            // Same person under another subject but a shared name (email).
            (
                "alice-2",
                &["alice-2", "alice@acme.example"],
                &["leads"],
                Err(Refusal::OwnRequest),
            ),
        ];
        for (sub, n, g, want) in rows {
            let who = person(n, g);
            assert_eq!(
                may_decide(parties(&names, &approvers), sub, &who),
                *want,
                "decider {sub}"
            );
        }
    }

    #[test]
    fn an_empty_approver_list_lets_nobody_decide() {
        let who = person(&["carol"], &["leads"]);
        assert_eq!(
            may_decide(parties(&[], &[]), "carol", &who),
            Err(Refusal::NotAnApprover)
        );
    }
}
