// swift-tools-version:6.0
// A Swift upstream's side of Doorman's call signature: DoormanVerify is the code to copy (or
// depend on); check-vector proves it against the same vector as the gateway and the Python example.
import PackageDescription

let package = Package(
    name: "swift-upstream",
    platforms: [.macOS(.v13)],
    products: [.library(name: "DoormanVerify", targets: ["DoormanVerify"])],
    dependencies: [.package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3")],
    targets: [
        .target(name: "DoormanVerify", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .executableTarget(name: "check-vector", dependencies: ["DoormanVerify"]),
    ]
)
