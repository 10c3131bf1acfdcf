// The peers' C modules, imported here so a missing library fails the build at once.
import CLevelDB
import CRocksDB
import CSQLite

enum PeerVersions {
    static var sqlite: String { String(cString: sqlite3_libversion()) }
    static var leveldb: String { "\(leveldb_major_version()).\(leveldb_minor_version())" }
}
