public import Probes
public import UsageModel

/// One registered instance at one sample: who it belongs to and what was read (nil: not running,
/// its cgroup or an interface is missing).
public struct InstanceObservation: Sendable, Equatable {
    public var identity: InstanceIdentity
    public var reading: InstanceReading?

    public init(identity: InstanceIdentity, reading: InstanceReading?) {
        self.identity = identity
        self.reading = reading
    }
}

/// What the agent remembers between samples: every instance's checkpoint and the threshold rules'
/// pending and firing state. It is what the database holds, plus which checkpoints moved on since
/// they were last written.
public struct MeteringState: Sendable, Equatable {
    /// Per instance id: the checkpoint (`MeterState`).
    public var checkpoints: [String: MeterState]
    /// Pending and firing (rule, instance) pairs.
    public var thresholds: [ThresholdKey: ThresholdState]
    /// Instances whose checkpoint moved on since it was last written (written by a flush on a
    /// clean shutdown; see `MeteringStep.checkpointsToWrite`).
    public var unsaved: Set<String>

    public init(
        checkpoints: [String: MeterState] = [:], thresholds: [ThresholdKey: ThresholdState] = [:],
        unsaved: Set<String> = []
    ) {
        self.checkpoints = checkpoints
        self.thresholds = thresholds
        self.unsaved = unsaved
    }
}

/// How an instance's running state changed with one step.
public enum InstanceTransition: Sendable, Equatable {
    /// First reading: a baseline, nothing billed before it.
    case started(instanceID: String)
    /// No reading (cgroup or interface missing): its open period was billed up to its last sample.
    case stopped(instanceID: String)
    /// A reading after a stop: a new period opens, the stopped span is a gap.
    case resumed(instanceID: String)
    /// No longer registered: its final period was billed and its checkpoint is deleted.
    case removed(instanceID: String)
}

/// Everything one sample decides: what to store, and the state to adopt once it is stored.
///
/// A step is a value: the caller stores `events`, `gaps`, `baselines`, `thresholdEvents`,
/// `checkpointsToWrite`, `removedCheckpoints` and `thresholdStates` in one transaction, and adopts
/// `state` only after that transaction commits, so a failed commit loses nothing.
public struct MeteringStep: Sendable, Equatable {
    /// Closed periods of every instance, host first, then instances in observation order, then
    /// removed instances' final periods.
    public var events: [UsageEvent]
    public var gaps: [MeteringGap]
    public var baselines: [MeteringBaseline]
    /// Threshold alerts that fired or resolved with the periods this step closed.
    public var thresholdEvents: [ThresholdEvent]
    /// The rules' state after the step, when the step evaluated rules (nil: unchanged, nothing to write).
    public var thresholdStates: [ThresholdKey: ThresholdState]?
    /// Instance ids whose checkpoints this step writes, in the order they were stepped.
    public var checkpointsToWrite: [String]
    /// Instance ids whose checkpoints this step deletes (removed instances), sorted.
    public var removedCheckpoints: [String]
    public var transitions: [InstanceTransition]
    /// The state to adopt once the step is stored.
    public var state: MeteringState
}

/// The pure metering engine of a host: from the checkpointed state and one sample (the host's
/// counters, the instances' observations, the GPUs' busy time, the threshold rules and the host's
/// gauges) to a `MeteringStep`.
///
/// It decides every billing question of a sample and nothing else: instance start, suspend,
/// resume and removal, which checkpoints must be written, and threshold firing and retirement.
/// Time is an input (the sample's clocks), so it is tested with tables and properties.
public struct MeteringEngine: Sendable {
    public let configuration: MeterConfiguration
    /// The host's identity; its instance id is the host instance's.
    public let identity: InstanceIdentity
    /// Whether the host itself is metered (`host.enabled`).
    public let meterHost: Bool

    public init(configuration: MeterConfiguration, identity: InstanceIdentity, meterHost: Bool = true) {
        self.configuration = configuration
        self.identity = identity
        self.meterHost = meterHost
    }

    /// Meters `sample` for the host instance (when `meterHost`) and `instances` for theirs (nil: the
    /// instances were not probed with this sample; they are left as they are). A sample without a
    /// boot ID cannot be metered: nil.
    ///
    /// Lifecycle of an instance: it starts at its first reading (a baseline, nothing billed); a
    /// nil reading (cgroup or interface missing) bills its open period up to its last sample and
    /// then nothing until it runs again; an instance with a checkpoint that is no longer in
    /// `instances` was removed: its final partial period is billed to the identity stored in its
    /// checkpoint, and its checkpoint is deleted.
    ///
    /// Each period the step closes is checked against `rules` (with `gauges`, the sampled values of
    /// the host's gauge metrics, for the host's periods); a removed instance's rules resolve.
    ///
    /// Checkpoints to write: the host's every sample (cheap: an unclean reboot then loses at most one
    /// sample interval of its usage); an instance's when its step closed a period, recorded a gap or
    /// a baseline, changed running state or owner. Between those, a crash on the same boot resumes
    /// from the previous checkpoint and bills the same usage from the counters, so nothing is lost,
    /// and a host with 1,000 instances does not rewrite 1,000 rows every sample.
    public func step(
        _ state: MeteringState, sample: HostSample, instances observed: [InstanceObservation]?,
        gpus: [(uuid: String, busyNanoseconds: UInt64)] = [], rules: [ThresholdRule] = [],
        gauges: [ThresholdMetric: Double] = [:]
    ) -> MeteringStep? {
        guard var hostReading = InstanceReading.host(sample) else { return nil }
        let timestamp = Int64(sample.time.wallNanos / 1_000_000_000)
        let previousStates = state.checkpoints
        var next = state.checkpoints
        var events: [UsageEvent] = []
        var gaps: [MeteringGap] = []
        var baselines: [MeteringBaseline] = []
        var changed: [String] = []
        var transitions: [InstanceTransition] = []
        var subjects: [ThresholdSubject] = []
        var advanced = Set<String>()

        func apply(_ step: MeterStep, for identity: InstanceIdentity, previous: MeterState?, always: Bool = false) {
            var stepped = step.state
            stepped.identity = identity
            let id = identity.instanceID
            if always || !step.events.isEmpty || !step.gaps.isEmpty || step.baseline != nil || previous == nil
                || previous?.stoppedAt != stepped.stoppedAt || previous?.identity != identity
            {
                changed.append(id)
            }
            next[id] = stepped
            advanced.insert(id)
            events += step.events
            gaps += step.gaps
            if let baseline = step.baseline { baselines.append(baseline) }
        }

        if meterHost {
            for gpu in gpus {
                hostReading.counters[CounterSource(.gpuBusyNanoseconds, gpu.uuid)] = gpu.busyNanoseconds
            }
            let previous = previousStates[identity.instanceID]
            let step = Meter.advance(previous, with: hostReading, identity: identity, configuration: configuration)
            apply(step, for: identity, previous: previous, always: true)
            subjects += step.events.map { ThresholdSubject(event: $0, isHost: true, gauges: gauges) }
        }

        var present = Set<String>()
        for instance in observed ?? [] where instance.identity.instanceID != identity.instanceID {
            let id = instance.identity.instanceID
            guard present.insert(id).inserted else { continue }
            let previous = previousStates[id]
            let step: MeterStep
            if var reading = instance.reading {
                reading.bootID = hostReading.bootID
                step = Meter.advance(previous, with: reading, identity: instance.identity, configuration: configuration)
                if previous == nil {
                    transitions.append(.started(instanceID: id))
                } else if previous?.stoppedAt != nil {
                    transitions.append(.resumed(instanceID: id))
                }
            } else if let previous {
                step = Meter.suspend(previous, identity: instance.identity, configuration: configuration, timestamp: timestamp)
                if previous.stoppedAt == nil { transitions.append(.stopped(instanceID: id)) }
            } else {
                continue  // never seen running: nothing to bill, nothing to remember
            }
            apply(step, for: instance.identity, previous: previous)
            subjects += step.events.map { ThresholdSubject(event: $0, isHost: false, gauges: [:]) }
        }

        // Instances with a checkpoint that are no longer registered were removed.
        var removed: [String] = []
        if observed != nil {
            for (id, checkpoint) in previousStates
            where !present.contains(id) && !(meterHost && id == identity.instanceID) {
                // Billed to whom it last belonged; a checkpoint from before identities were kept is
                // the host's.
                let owner =
                    checkpoint.identity ?? InstanceIdentity(instanceID: id, userID: identity.userID, orgID: identity.orgID)
                events += Meter.finish(checkpoint, identity: owner, configuration: configuration, timestamp: timestamp)
                next[id] = nil
                removed.append(id)
            }
            removed.sort()
        }
        transitions += removed.map { .removed(instanceID: $0) }

        let round = thresholdRound(rules: rules, subjects: subjects, states: state.thresholds, removed: removed)
        let alerts = round?.transitions.map { $0.event(hostID: configuration.hostID, timestamp: timestamp) } ?? []

        var unsaved = state.unsaved.union(advanced)
        unsaved.subtract(changed)
        unsaved.subtract(removed)
        return MeteringStep(
            events: events, gaps: gaps, baselines: baselines, thresholdEvents: alerts, thresholdStates: round?.states,
            checkpointsToWrite: changed.filter { next[$0] != nil }, removedCheckpoints: removed,
            transitions: transitions,
            state: MeteringState(checkpoints: next, thresholds: round?.states ?? state.thresholds, unsaved: unsaved))
    }

    /// The rules evaluated against the periods just closed, and the rules of removed instances
    /// retired (resolved if firing). nil when there was nothing to evaluate.
    private func thresholdRound(
        rules: [ThresholdRule], subjects: [ThresholdSubject], states: [ThresholdKey: ThresholdState], removed: [String]
    ) -> ThresholdRound? {
        var round: ThresholdRound?
        if !subjects.isEmpty, !(rules.isEmpty && states.isEmpty) {
            round = ThresholdEvaluator.evaluate(rules: rules, subjects: subjects, states: states)
        }
        for id in removed where (round?.states ?? states).keys.contains(where: { $0.instanceID == id }) {
            let retired = ThresholdEvaluator.retire(instanceID: id, states: round?.states ?? states)
            round = ThresholdRound(states: retired.states, transitions: (round?.transitions ?? []) + retired.transitions)
        }
        return round
    }

    /// The checkpoints a clean shutdown writes: those that moved on since they were last written.
    public func checkpointsToFlush(_ state: MeteringState) -> [(instanceID: String, state: MeterState)] {
        state.unsaved.sorted().compactMap { id in state.checkpoints[id].map { (id, $0) } }
    }
}
