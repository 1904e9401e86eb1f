/// The agent's release version; `scripts/build-deb.sh` and `hostmeter version` read it.
public enum AgentVersion {
    public static let current = "0.1.0"
}
