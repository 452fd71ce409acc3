//! The page's only stylesheet, inlined so the file stands alone. Calm
//! greys for structure; colour only where it means something: red for
//! failures, amber for faults and unknowns, green for healthy.

pub const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#1f2328;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 24px 40px}
a{color:#0b5cad;text-decoration:none}a:hover{text-decoration:underline}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:14px;margin:16px 0 2px;font-weight:600}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:#6a737d}
.note{background:#fff6db;border:1px solid #efd795;border-radius:6px;padding:8px 12px}
.banner{display:flex;align-items:center;gap:28px;border-radius:10px;padding:18px 26px;border-left:12px solid}
.banner .word{font-size:46px;font-weight:800;letter-spacing:.04em;line-height:1}
.banner .scenario{font-size:20px;font-weight:700}
.banner .desc{color:#3d444d}
.banner .facts{color:#6a737d;font-size:12px;margin-top:4px}
.banner.fail{background:#fdecea;border-color:#b3261e}.banner.fail .word{color:#b3261e}
.banner.pass{background:#e7f4eb;border-color:#1e7a46}.banner.pass .word{color:#1e7a46}
.banner.unknown,.banner.interrupted{background:#fff5d9;border-color:#a86b00}
.banner.unknown .word,.banner.interrupted .word{color:#8a5a00}
.counts{margin:12px 2px 6px}
b.pass{color:#1e7a46}b.fail{color:#b3261e}b.unknown{color:#8a5a00}
ol.why{list-style:none;padding:0;margin:8px 0 18px}
ol.why li{background:#fff;border:1px solid #e3e6ea;border-left:5px solid #b3261e;border-radius:6px;padding:10px 14px;margin:8px 0}
ol.why li.unknown{border-left-color:#d39a1e}
ol.why .tag{font-weight:700;color:#b3261e}ol.why li.unknown .tag{color:#8a5a00}
ol.why .at{color:#3d444d;margin:0 6px}
ol.why .reason{margin-top:4px;font-size:15px}
section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:16px 20px;margin:18px 0}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;color:#57606a;font-weight:600;border-bottom:1px solid #d8dde3;padding:5px 8px}
td{padding:4px 8px;border-bottom:1px solid #eef0f2;vertical-align:top}
tr.fail td{background:#fdf1f0}tr.unknown td{background:#fffaf0}tr.faultrow td{background:#fcf7ec}
tr.gap td{text-align:center;color:#6a737d;background:#f6f8fa}
td.warn{color:#b3261e;font-weight:600}
td.reason{max-width:440px}
td.detail{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-word;color:#3d444d}
.nowrap{white-space:nowrap}
.rel{color:#8c959f;font-size:12px}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:11px;font-weight:700;text-transform:uppercase}
.badge.pass{background:#e7f4eb;color:#1e7a46}.badge.fail{background:#b3261e;color:#fff}.badge.unknown{background:#fff0c2;color:#8a5a00}
.stat{color:#57606a;font-weight:400;font-size:12px;margin-left:8px}
.legend{color:#57606a;font-weight:400;font-size:12px;margin-left:10px}
.legend i.k{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 3px 0 10px;vertical-align:-1px}
.k.up{background:#7fb38f}.k.starting{background:#cfe3d5}.k.fault{background:#f1cf93}.k.restart{background:#8c959f;width:2px!important}.k.failmark{background:#b3261e;width:3px!important}
svg.chart{display:block;width:100%;height:auto;margin:2px 0 8px}
svg.chart text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#6a737d}
svg .grid{stroke:#eceef1}svg .tick{stroke:#c9ced4}
svg .ylab{text-anchor:end}svg .xlab{text-anchor:middle}
svg .line{fill:none;stroke-width:1.6;stroke-linejoin:round}
svg .trend{stroke:#1f2328;stroke-width:1.6;opacity:.75}
svg .projection{stroke:#1f2328;stroke-width:1.6;stroke-dasharray:6 4;opacity:.6}
svg text.trendlab{text-anchor:end;font-weight:600;fill:#1f2328}
svg .future{fill:#f3f4f6}
svg .fault rect{fill:#e9a23b;opacity:.25}svg .fault text{fill:#9a6412;font-size:10px}
svg .restart{stroke:#8c959f;stroke-width:1.2;stroke-dasharray:3 3}svg .restart.bad{stroke:#d9822b;stroke-width:1.8;stroke-dasharray:none}
svg .failmark line{stroke:#b3261e;stroke-width:2}svg .failmark text{fill:#b3261e;font-weight:700}
svg .down{fill:#f1f2f4}svg .starting{fill:#cfe3d5}svg .up{fill:#7fb38f}svg .never{fill:#e8c37d}
.incident{border-left:4px solid #e9a23b;padding:2px 0 2px 14px;margin:16px 0}
.incident.bad{border-left-color:#b3261e}
.incident h3{margin:0 0 4px}.incident h3 .at{font-weight:700}
.incident ul{margin:0 0 6px;padding-left:18px}.incident li.bad{color:#8f1f18}
pre.log{background:#f6f8fa;border:1px solid #e3e6ea;border-radius:6px;padding:8px 10px;margin:4px 0 0;font:12px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;max-height:460px;overflow:auto}
pre.log .t{color:#8c959f}pre.log .s{color:#6a737d}pre.log .s.err{color:#b3261e}
pre.log .here{display:block;background:#fdecea;color:#b3261e;font-weight:700;margin:2px -10px;padding:0 10px}
table.events td{padding:3px 8px}
footer{color:#8c959f;font-size:12px;margin-top:10px}
"#;
