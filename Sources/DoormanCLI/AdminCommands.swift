// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation

let keyColumns = [("ID", "id"), ("NAME", "name"), ("START", "displayStart"), ("USER", "userID"), ("GROUP", "groupID"),
                  ("SCOPES", "scopes"), ("PROPERTIES", "properties"), ("STATE", "status|state"), ("EXPIRES", "expiresAt"), ("LAST USED", "lastUsedAt")]
let userColumns = [("ID", "id"), ("NAME", "name"), ("STATE", "state"), ("PERMISSIONS", "permissions"), ("GROUPS", "groups"), ("PROPERTIES", "properties")]
let groupColumns = [("ID", "id"), ("NAME", "name"), ("PERMISSIONS", "permissions"), ("DESCRIPTION", "description")]
let auditColumns = [("SEQ", "seq"), ("TIME", "time"), ("ACTOR", "actor"), ("ACTION", "action"), ("TARGET", "targetID"), ("CHANGE", "change")]

/// Path-safe id.
func escaped(_ id: String) -> String { id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "_-"))) ?? id }

/// Prints a freshly issued secret, the only time anyone sees it (`quiet`: the secret alone, for
/// `KEY=$(doorman keys create … --quiet)`).
func printIssued(_ value: Any?, json: Bool, quiet: Bool = false) {
    if json { return Output.print(value, json: true, columns: []) }
    if quiet { return print((value as? [String: Any])?["secret"] as? String ?? "") }
    let issued = value as? [String: Any]
    let key = issued?["key"] as? [String: Any]
    Output.table([key ?? [:]], keyColumns)
    print("secret: \(issued?["secret"] as? String ?? "?")")
    FileHandle.standardError.write(Data("This secret is shown once and never stored: copy it now.\n".utf8))
}

/// Prints what a create answered: the table, or (`quiet`) its id alone.
func printCreated(_ value: Any?, json: Bool, quiet: Bool, columns: [(String, String)]) {
    if quiet, !json { return print((value as? [String: Any])?["id"] as? String ?? "") }
    Output.print(value, json: json, columns: columns)
}

/// For scripts: `ID=$(doorman users create … --quiet)`.
struct Quiet: ParsableArguments {
    @Flag(name: [.short, .long], help: "Print only the new id (users, groups) or the secret (keys).") var quiet = false
}

/// Prints a suspension's or revocation's receipt.
func printReceipt(_ value: Any?, json: Bool) {
    if json { return Output.print(value, json: true, columns: []) }
    let change = value as? [String: Any]
    Output.table([change?["key"] as? [String: Any] ?? [:]], keyColumns)
    let ended = (change?["sessionsEnded"] as? Int) ?? 0
    print("live sessions ended: \(ended)" + ((change?["complete"] as? Bool) == true ? "" : " (closing)"))
}

let sessionColumns = [("ID", "id"), ("KEY", "keyID"), ("USER", "userID"), ("ADDRESS", "address"), ("USER AGENT", "userAgent"),
                      ("SINCE", "since"), ("LAST ACTIVITY", "lastActivity"), ("SUBSCRIPTIONS", "subscriptions"), ("NODE", "node")]

struct Sessions: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "See and end live sessions.", subcommands: [List.self, Kill.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List live sessions.")
        @OptionGroup var options: AdminOptions
        @Option(help: "Only this key's sessions.") var key: String?
        @Option(help: "Only this user's sessions.") var user: String?
        func run() throws {
            var query: [String] = []
            if let key { query.append("key=\(escaped(key))") }
            if let user { query.append("user=\(escaped(user))") }
            let path = "/v1/sessions" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
            Output.print(try options.client().call("GET", path), json: options.json, columns: sessionColumns)
        }
    }

    struct Kill: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End one live session (notice, then close 4107; the device comes back after a short wait).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The session's id (the ID column of sessions list).") var id: String
        @Option(help: "The node it is on (the NODE column; ids restart per process). Default: the node answering.") var node: String?
        func run() throws {
            let path = "/v1/sessions/\(escaped(id))" + (node.map { "?node=\(escaped($0))" } ?? "")
            let answer = try options.client().call("DELETE", path)
            if options.json { return Output.print(answer ?? ["ended": id], json: true, columns: []) }
            print("ended session \(id)" + (node.map { " on \($0)" } ?? ""))
        }
    }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API keys through a running gateway's admin API.",
        subcommands: [Create.self, List.self, Show.self, Edit.self, Suspend.self, Resume.self, Revoke.self, Rotate.self, Delete.self, Explain.self])

    struct Fields: ParsableArguments {
        @Option(help: "Description.") var description: String?
        @Option(help: "Permission group id.") var group: String?
        @Option(help: "Scope pattern (repeatable), e.g. pms:checkIn*.") var scope: [String] = []
        @Option(help: "Property the key may reach (repeatable); * = all.") var property: [String] = []
        @Option(help: "Rule (repeatable, in order; !pattern denies).") var rule: [String] = []
        @Option(help: "Expiry, ISO 8601 (2027-01-31T00:00:00Z).") var expires: String?

        func body() -> [String: Any] {
            var b: [String: Any] = [:]
            if let description { b["description"] = description }
            if let group { b["groupID"] = group }
            if !scope.isEmpty { b["scopes"] = scope }
            if !property.isEmpty { b["properties"] = property }
            if !rule.isEmpty { b["rules"] = rule }
            if let expires { b["expiresAt"] = expires }
            return b
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; prints its secret once.")
        @OptionGroup var options: AdminOptions
        @Option(help: "The user the key emulates.") var user: String
        @Option(help: "Name (say where the device is: \"door 12 panel\").") var name: String
        @OptionGroup var fields: Fields
        @OptionGroup var quiet: Quiet
        func run() throws {
            var body = fields.body()
            body["userID"] = user
            body["name"] = name
            printIssued(try options.client().call("POST", "/v1/keys", body: body), json: options.json, quiet: quiet.quiet)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (revoked ones included).")
        @OptionGroup var options: AdminOptions
        @Option(help: "Only this user's keys.") var user: String?
        @Option(help: "active, expired, suspended or revoked.") var state: String?
        @Option(help: "Page size (1-1000).") var limit: Int?
        @Option(help: "Cursor from the previous page.") var after: String?
        func run() throws {
            var query: [String] = []
            if let user { query.append("user=\(escaped(user))") }
            if let state { query.append("state=\(escaped(state))") }
            if let limit { query.append("limit=\(limit)") }
            if let after { query.append("after=\(escaped(after))") }
            let path = "/v1/keys" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
            Output.print(try options.client().call("GET", path), json: options.json, columns: keyColumns)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a key (never its secret).")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws {
            let key = try options.client().call("GET", "/v1/keys/\(escaped(id))")
            if options.json { return Output.print(key, json: true, columns: []) }
            for (k, v) in (key as? [String: Any] ?? [:]).sorted(by: { $0.key < $1.key }) { print("\(k): \(Output.text(v))") }
        }
    }

    struct Edit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Edit a key's name, description, group, scopes, properties, rules or expiry.")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        @Option(help: "Name.") var name: String?
        @OptionGroup var fields: Fields
        @Flag(help: "Remove the expiry.") var clearExpiry = false
        @Flag(help: "Remove the group.") var clearGroup = false
        func run() throws {
            var body = fields.body()
            if let name { body["name"] = name }
            if clearExpiry { body["clearExpiry"] = true }
            if clearGroup { body["clearGroup"] = true }
            Output.print(try options.client().call("PATCH", "/v1/keys/\(escaped(id))", body: body), json: options.json, columns: keyColumns)
        }
    }

    struct Suspend: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Suspend a key; its live sessions are closed (4102) and its devices come back by themselves after a resume.")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        @Flag(help: "Wait until every live session is told and closed.") var wait = false
        func run() throws { printReceipt(try options.client().call("POST", "/v1/keys/\(escaped(id))/suspend" + (wait ? "?wait=true" : "")), json: options.json) }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a suspended key.")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws { Output.print(try options.client().call("POST", "/v1/keys/\(escaped(id))/resume"), json: options.json, columns: keyColumns) }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key for good (it stays listed, disabled); its live sessions are closed (4001).")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        @Flag(help: "Wait until every live session is told and closed.") var wait = false
        func run() throws { printReceipt(try options.client().call("POST", "/v1/keys/\(escaped(id))/revoke" + (wait ? "?wait=true" : "")), json: options.json) }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give a key a new secret (printed once); the old one works for --grace (90s, 15m, 2h, 1d).")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        @Option(help: "How long the old secret keeps working: 90s, 15m, 2h, 1d (a bare number is seconds).") var grace = TimeSpan(seconds: 0)
        @OptionGroup var quiet: Quiet
        func run() throws {
            printIssued(try options.client().call("POST", "/v1/keys/\(escaped(id))/rotate", body: ["graceSeconds": grace.seconds]),
                        json: options.json, quiet: quiet.quiet)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a key (it stays in the audit trail).")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws {
            _ = try options.client().call("DELETE", "/v1/keys/\(escaped(id))")
            if !options.json { print("deleted \(id)") }
        }
    }

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "May this key do an action (on a property), and what decided?",
            discussion: "Exit status: 0 allowed, 2 denied, 1 refused (an unknown key, bad input), 3 unreachable.")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        @Option(help: "<service>:<api_name>, e.g. pms:checkIn.") var action: String
        @Option(help: "The property, if any.") var property: String?
        func run() throws {
            var body: [String: Any] = ["action": action]
            if let property { body["property"] = property }
            let decision = try options.client().call("POST", "/v1/keys/\(escaped(id))/explain", body: body)
            let d = decision as? [String: Any] ?? [:]
            let allowed = d["allowed"] as? Bool == true
            if options.json {
                Output.print(decision, json: true, columns: [])
                if !allowed { throw ExitCode(ExitStatus.denied) }
                return
            }
            var line = allowed ? "allowed" : "denied: \(d["reason"] as? String ?? "?")"
            if let by = d["decidedBy"] as? String { line += " (by \(by)" + ((d["ruleIndex"] as? Int).map { ", rule \($0 + 1)" } ?? "") + ")" }
            print(line)
            if !allowed { throw ExitCode(ExitStatus.denied) }
        }
    }
}

struct Users: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage users (the identities keys emulate).",
        subcommands: [Create.self, List.self, Show.self, Edit.self, Disable.self, Enable.self, Delete.self])

    struct Fields: ParsableArguments {
        @Option(help: "Name.") var name: String?
        @Option(help: "Permission pattern (repeatable).") var permission: [String] = []
        @Option(help: "Permission group id (repeatable).") var group: [String] = []
        @Option(help: "Property the user may reach (repeatable); * = all.") var property: [String] = []
        func body() -> [String: Any] {
            var b: [String: Any] = [:]
            if let name { b["name"] = name }
            if !permission.isEmpty { b["permissions"] = permission }
            if !group.isEmpty { b["groups"] = group }
            if !property.isEmpty { b["properties"] = property }
            return b
        }
    }

    struct Create: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @OptionGroup var fields: Fields
        @OptionGroup var quiet: Quiet
        func run() throws {
            printCreated(try options.client().call("POST", "/v1/users", body: fields.body()), json: options.json, quiet: quiet.quiet, columns: userColumns)
        }
    }

    struct List: ParsableCommand {
        @OptionGroup var options: AdminOptions
        func run() throws { Output.print(try options.client().call("GET", "/v1/users"), json: options.json, columns: userColumns) }
    }

    struct Show: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws { Output.print(try options.client().call("GET", "/v1/users/\(escaped(id))"), json: options.json, columns: userColumns) }
    }

    struct Edit: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        @OptionGroup var fields: Fields
        func run() throws { Output.print(try options.client().call("PATCH", "/v1/users/\(escaped(id))", body: fields.body()), json: options.json, columns: userColumns) }
    }

    struct Disable: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws { Output.print(try options.client().call("POST", "/v1/users/\(escaped(id))/disable"), json: options.json, columns: userColumns) }
    }

    struct Enable: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws { Output.print(try options.client().call("POST", "/v1/users/\(escaped(id))/enable"), json: options.json, columns: userColumns) }
    }

    struct Delete: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws {
            _ = try options.client().call("DELETE", "/v1/users/\(escaped(id))")
            if !options.json { print("deleted \(id)") }
        }
    }
}

struct Groups: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage permission groups.",
        subcommands: [Create.self, List.self, Show.self, Edit.self, Delete.self])

    struct Fields: ParsableArguments {
        @Option(help: "Name.") var name: String?
        @Option(help: "Description.") var description: String?
        @Option(help: "Permission pattern (repeatable).") var permission: [String] = []
        func body() -> [String: Any] {
            var b: [String: Any] = [:]
            if let name { b["name"] = name }
            if let description { b["description"] = description }
            if !permission.isEmpty { b["permissions"] = permission }
            return b
        }
    }

    struct Create: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @OptionGroup var fields: Fields
        @OptionGroup var quiet: Quiet
        func run() throws {
            printCreated(try options.client().call("POST", "/v1/groups", body: fields.body()), json: options.json, quiet: quiet.quiet, columns: groupColumns)
        }
    }

    struct List: ParsableCommand {
        @OptionGroup var options: AdminOptions
        func run() throws { Output.print(try options.client().call("GET", "/v1/groups"), json: options.json, columns: groupColumns) }
    }

    struct Show: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws { Output.print(try options.client().call("GET", "/v1/groups/\(escaped(id))"), json: options.json, columns: groupColumns) }
    }

    struct Edit: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        @OptionGroup var fields: Fields
        func run() throws { Output.print(try options.client().call("PATCH", "/v1/groups/\(escaped(id))", body: fields.body()), json: options.json, columns: groupColumns) }
    }

    struct Delete: ParsableCommand {
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() throws {
            _ = try options.client().call("DELETE", "/v1/groups/\(escaped(id))")
            if !options.json { print("deleted \(id)") }
        }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the audit trail, newest first.")
    @OptionGroup var options: AdminOptions
    @Option(help: "Only entries about this id.") var target: String?
    @Option(help: "Only entries by this actor (an admin key id).") var actor: String?
    @Option(help: "Only this action, e.g. key.revoke.") var action: String?
    @Option(help: "Entries before this seq (paging).") var before: Int?
    @Option(help: "Page size (1-1000).") var limit: Int?
    func run() throws {
        var query: [String] = []
        if let target { query.append("target=\(escaped(target))") }
        if let actor { query.append("actor=\(escaped(actor))") }
        if let action { query.append("action=\(escaped(action))") }
        if let before { query.append("before=\(before)") }
        if let limit { query.append("limit=\(limit)") }
        let path = "/v1/audit" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        Output.print(try options.client().call("GET", path), json: options.json, columns: auditColumns, pageFlag: "--before")
    }
}
