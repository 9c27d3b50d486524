// SPDX-License-Identifier: Apache-2.0
import Foundation

/// RFC 3339 §5.6 `date-time`, read and written exactly as JSON Schema's `format: date-time`
/// checks it, on the proleptic Gregorian calendar (Foundation's ISO 8601 formatter switches to
/// the Julian calendar before 1582, and rejects fractional seconds by default).
///
///     2026-03-01T09:30:00Z   2026-03-01t09:30:00.250+01:00   (T/t, Z/z, any fraction digits)
///     yyyy-mm-dd T hh:mm:ss[.frac] (Z | ±hh:mm)
enum RFC3339 {
    /// The instant `text` names, or nil if it is not an RFC 3339 date-time.
    static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        // Fixed part: "yyyy-mm-ddThh:mm:ss" is 19 bytes; then a fraction and an offset.
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let year = digits(b, 0, 4), let month = digits(b, 5, 2), let day = digits(b, 8, 2),
              let hour = digits(b, 11, 2), let minute = digits(b, 14, 2), let second = digits(b, 17, 2)
        else { return nil }
        var i = 19
        var fraction = 0.0
        if b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, let d = digit(b[i]) {
                fraction += Double(d) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        var offsetMinutes = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard b.count == i + 6, b[i + 3] == UInt8(ascii: ":"),
                  let h = digits(b, i + 1, 2), let m = digits(b, i + 4, 2), h <= 23, m <= 59 else { return nil }
            offsetMinutes = (h * 60 + m) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count, (1...12).contains(month), (1...daysIn(month, of: year)).contains(day),
              hour <= 23, minute <= 59, second <= 60 else { return nil }
        // RFC 3339 §5.7: a leap second is 23:59:60 in UTC, whatever the offset.
        let utcMinuteOfDay = ((hour * 60 + minute - offsetMinutes) % 1440 + 1440) % 1440
        if second == 60, utcMinuteOfDay != 23 * 60 + 59 { return nil }
        let days = daysFromCivil(year, month, day)
        let seconds = Double(days) * 86400 + Double(hour * 3600 + minute * 60 + second - offsetMinutes * 60) + fraction
        return Date(timeIntervalSince1970: seconds)
    }

    /// `yyyy-mm-ddThh:mm:ssZ` (whole seconds, rounded down). An instant whose UTC year is outside
    /// 0000–9999 (only an input's offset can reach that) keeps a valid spelling with a ±23:59 offset.
    static func format(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let limit: Int64 = 23 * 3600 + 59 * 60
        if seconds < minimum { return spell(seconds + limit, offset: "+23:59") }
        if seconds > maximum { return spell(seconds - limit, offset: "-23:59") }
        return spell(seconds, offset: "Z")
    }

    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    private static let minimum = Int64(daysFromCivil(0, 1, 1)) * 86400
    private static let maximum = Int64(daysFromCivil(10000, 1, 1)) * 86400 - 1

    private static func spell(_ seconds: Int64, offset: String) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rest = Int(seconds - days * 86400)
        let (y, m, d) = civilFromDays(Int(days))
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let year = String(repeating: "0", count: max(0, 4 - String(y).count)) + String(y)
        return "\(year)-\(two(m))-\(two(d))T\(two(rest / 3600)):\(two(rest / 60 % 60)):\(two(rest % 60))\(offset)"
    }

    private static func digit(_ byte: UInt8) -> Int? {
        (48...57).contains(byte) ? Int(byte - 48) : nil
    }

    private static func digits(_ b: [UInt8], _ start: Int, _ count: Int) -> Int? {
        guard start + count <= b.count else { return nil }
        var value = 0
        for i in start..<start + count {
            guard let d = digit(b[i]) else { return nil }
            value = value * 10 + d
        }
        return value
    }

    private static func daysIn(_ month: Int, of year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// The inverse of `daysFromCivil` (Hinnant's `civil_from_days`).
    private static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
