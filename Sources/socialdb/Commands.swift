/// The verbs of the shell language (../shared/BRIEF.md), with their help. `implemented` marks
/// the ones this build answers; the others are recognised and answer that they are not
/// available yet, so a script learns that rather than a syntax error.
struct CommandInfo {
    let verb: String
    let usage: String
    let summary: String
    let implemented: Bool
}

let commandTable: [CommandInfo] = [
    CommandInfo(verb: "USER", usage: "USER ADD <handle> [<display name>] [PASSWORD <password>] | USER SHOW <handle> | USER SET <handle> name|bio <text>", summary: "create, show or update a user", implemented: true),
    CommandInfo(verb: "POST", usage: "POST <handle> <text>", summary: "post a tweet; returns the tweet with its id", implemented: true),
    CommandInfo(verb: "REPLY", usage: "REPLY <handle> <tweet-id> <text>", summary: "reply to a tweet", implemented: true),
    CommandInfo(verb: "RETWEET", usage: "RETWEET <handle> <tweet-id>", summary: "share a tweet", implemented: true),
    CommandInfo(verb: "UNRETWEET", usage: "UNRETWEET <handle> <tweet-id>", summary: "unshare a tweet", implemented: true),
    CommandInfo(verb: "QUOTE", usage: "QUOTE <handle> <tweet-id> <text>", summary: "quote a tweet", implemented: true),
    CommandInfo(verb: "LIKE", usage: "LIKE <handle> <tweet-id>", summary: "like a tweet", implemented: true),
    CommandInfo(verb: "UNLIKE", usage: "UNLIKE <handle> <tweet-id>", summary: "unlike a tweet", implemented: true),
    CommandInfo(verb: "DELETE", usage: "DELETE <handle> <tweet-id>", summary: "delete one's own tweet", implemented: true),
    CommandInfo(verb: "TWEET", usage: "TWEET <tweet-id>", summary: "one tweet with its counts", implemented: true),
    CommandInfo(verb: "THREAD", usage: "THREAD <tweet-id>", summary: "the conversation a tweet belongs to", implemented: true),
    CommandInfo(verb: "FOLLOW", usage: "FOLLOW <follower> <followee>", summary: "follow a user", implemented: true),
    CommandInfo(verb: "UNFOLLOW", usage: "UNFOLLOW <follower> <followee>", summary: "unfollow a user", implemented: true),
    CommandInfo(verb: "FOLLOWERS", usage: "FOLLOWERS <handle> [LIMIT n] [AFTER cursor]", summary: "a page of followers", implemented: true),
    CommandInfo(verb: "FOLLOWING", usage: "FOLLOWING <handle> [LIMIT n] [AFTER cursor]", summary: "a page of followees", implemented: true),
    CommandInfo(verb: "HOME", usage: "HOME <handle> [LIMIT n] [BEFORE tweet-id]", summary: "home timeline page", implemented: true),
    CommandInfo(verb: "TWEETS", usage: "TWEETS <handle> [LIMIT n] [BEFORE tweet-id]", summary: "a user's own tweets and retweets", implemented: true),
    CommandInfo(verb: "SEARCH", usage: "SEARCH [TWEETS] <query> [LIMIT n] [BEFORE tweet-id] | SEARCH USERS <text> [LIMIT n]", summary: "search tweets or users", implemented: true),
    CommandInfo(verb: "NOTIFICATIONS", usage: "NOTIFICATIONS <handle> [LIMIT n]", summary: "notifications, newest first", implemented: true),
    CommandInfo(verb: "TRENDS", usage: "TRENDS [LIMIT n]", summary: "top hashtags of the last 24 hours", implemented: true),
    CommandInfo(verb: "IMPORT", usage: "IMPORT FOLLOWS <path> [SYMMETRIC] | IMPORT TWEETS <path>", summary: "bulk load an edge list or tweets (JSON lines)", implemented: true),
    CommandInfo(verb: "AUTH", usage: "AUTH <handle> <password>", summary: "log in: later commands act as this user (socialdb serve)", implemented: true),
    CommandInfo(verb: "PASSWORD", usage: "PASSWORD <handle> <new password>", summary: "set a user's password", implemented: true),
    CommandInfo(verb: "FORMAT", usage: "FORMAT text|json", summary: "this connection's responses: JSON lines or text (socialdb serve)", implemented: true),
    CommandInfo(verb: "STATS", usage: "STATS", summary: "sizes, counts, log position, I/O backend", implemented: true),
    CommandInfo(verb: "HELP", usage: "HELP [command]", summary: "this help, or one command's", implemented: true),
    CommandInfo(verb: "QUIT", usage: "QUIT", summary: "close the database and leave", implemented: true),
]

func commandInfo(_ verb: String) -> CommandInfo? {
    let upper = verb.uppercased()
    if upper == "EXIT" { return commandInfo("QUIT") }
    return commandTable.first { $0.verb == upper }
}

/// The known verb closest to `word` by edit distance, if one is close enough to be a typo.
func nearestVerb(to word: String) -> String? {
    let target = Array(word.uppercased())
    var best: (verb: String, distance: Int)?
    for info in commandTable {
        let d = editDistance(target, Array(info.verb))
        if d <= max(1, target.count / 3), best == nil || d < best!.distance { best = (info.verb, d) }
    }
    return best?.verb
}

/// Edits (insert, delete, substitute, or swap two neighbours: `POTS` is one edit from `POST`)
/// between two words: the optimal-string-alignment distance.
func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var beforePrevious = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = min(current[j], beforePrevious[j - 2] + 1)
            }
        }
        (beforePrevious, previous, current) = (previous, current, beforePrevious)
    }
    return previous[b.count]
}
