import Foundation
import GPU
import Testing

@Suite struct NVMLLibraryTests {
    @Test func noLibraryAtThePathIsNoNVMLNotAnError() {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("no-such-\(UUID().uuidString)/libnvidia-ml.so.1").path
        guard case .noNVML(let reason) = NVMLLibrary.load(path: path) else {
            Issue.record("expected noNVML")
            return
        }
        // dlerror's text names what it could not open.
        #expect(reason.contains(path))
    }

    @Test func prefersTheVersionedEntryPoints() throws {
        // The fake's unversioned nvmlInit fails: loading works only if the _v2 one is bound.
        let fake = try FakeNVML(script: "count 1\n")
        defer { fake.remove() }
        let library = try fake.load()
        #expect(library.boundVersionedSymbols == ["nvmlInit_v2", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2"])
        #expect(library.missingOptionalSymbols.isEmpty)
    }

    @Test func fallsBackToUnversionedEntryPointsOnOldDrivers() throws {
        let fake = try FakeNVML(defines: ["FAKE_NO_V2"], script: "count 1\nrate 0 30\n")
        defer { fake.remove() }
        let library = try fake.load()
        #expect(library.boundVersionedSymbols == ["nvmlInit", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex"])
        let snapshot = GPUSampler(library: library).sample()
        #expect(snapshot.error == nil)
        #expect(snapshot.gpus.map(\.uuid) == ["GPU-fake-0"])
    }

    @Test func missingRequiredSymbolIsAnErrorNamingIt() throws {
        let fake = try FakeNVML(defines: ["FAKE_OMIT_nvmlDeviceGetUUID"])
        defer { fake.remove() }
        guard case .failed(let error) = NVMLLibrary.load(path: fake.libraryPath) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error == .missingSymbol(path: fake.libraryPath, symbol: "nvmlDeviceGetUUID"))
        #expect(error.description.contains("nvmlDeviceGetUUID"))
    }

    @Test func missingOptionalSymbolsAreListed() throws {
        let fake = try FakeNVML(defines: ["FAKE_OMIT_nvmlDeviceGetTotalEnergyConsumption", "FAKE_OMIT_nvmlDeviceGetMigMode"])
        defer { fake.remove() }
        let library = try fake.load()
        #expect(library.missingOptionalSymbols == ["nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetMigMode"])
    }

    @Test func initFailureCarriesNVMLsErrorString() throws {
        let fake = try FakeNVML(script: "init 9\n")
        defer { fake.remove() }
        guard case .failed(let error) = NVMLLibrary.load(path: fake.libraryPath) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error == .initFailed(function: "nvmlInit_v2", code: 9, message: "fake: Driver Not Loaded"))
        #expect(error.description == "nvmlInit_v2 failed: fake: Driver Not Loaded (NVML error 9)")
        // A failed init is not balanced by a shutdown.
        #expect(fake.calls().isEmpty)
    }

    @Test func releasingTheLibraryShutsNVMLDown() throws {
        let fake = try FakeNVML(script: "count 0\n")
        defer { fake.remove() }
        do {
            let library = try fake.load()
            #expect(library.errorString(15) == "fake: GPU is lost")
            #expect(fake.calls().isEmpty)
        }
        #expect(fake.calls() == ["nvmlShutdown"])
    }
}
