// SPDX-License-Identifier: Apache-2.0

/// The one rule for admin writes: an actor may create, edit, rotate, suspend, revoke, delete or act
/// for a key, user or group only if everything the change touches is within the actor's own
/// effective rights: the target as it was and the target as it will be (for a key, its effective
/// rights as a session would have them).
///
/// So nobody grants what they do not hold, widens themselves or a group they belong to (the new
/// rights would have to be within the old), or touches (rotates, suspends, reads a new secret of) a
/// key or user above them. A full administrator (every `admin:` action on every property) is the
/// top of the tree and bounded by nothing: it can already define every user and group.
public enum Delegation {
    public enum Verdict: Equatable, Sendable {
        case allowed
        /// What of the named principal lies outside the actor's rights.
        case refused(String)
    }

    /// A principal a change touches, named for the refusal.
    public struct Touched: Sendable {
        public var what: String
        public var rights: Rights

        public init(_ what: String, _ rights: Rights) {
            self.what = what
            self.rights = rights
        }
    }

    public static func decide(actor: Rights, touches: [Touched]) -> Verdict {
        if actor.missing(from: .fullAdministrator) == nil { return .allowed }
        for touched in touches {
            if let gap = actor.missing(from: touched.rights) { return .refused("\(touched.what) reaches \(gap), beyond this key's rights") }
        }
        return .allowed
    }
}
