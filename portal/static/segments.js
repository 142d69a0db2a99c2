/* How many SMS segments a text costs: the rules of shared/segments.py, in the browser, for the
 * compose meter. Keep the two in step (tests/demo/test_inbox_compose.py compares them).
 *
 * - Only GSM-7 characters: GSM-7. Basic-table characters cost one septet, extension-table
 *   characters (€ [ ] { } \ ~ ^ | and form feed) two. 160 fit one segment; a longer text is
 *   split in segments of 153, and an escape pair never straddles two segments.
 * - Anything else: UCS-2, counted in UTF-16 code units (an emoji is two), 70 in one segment,
 *   67 per segment when split; a surrogate pair never straddles two segments.
 */
(function (root) {
  "use strict";

  var GSM7_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM7_EXTENSION = "\f^{}\\[~]|€";
  var GSM = { single: 160, per: 153 };
  var UCS2 = { single: 70, per: 67 };

  var basic = {}, extension = {};
  Array.from(GSM7_BASIC).forEach(function (ch) { basic[ch] = true; });
  Array.from(GSM7_EXTENSION).forEach(function (ch) { extension[ch] = true; });

  function pack(units, limits) {
    var total = units.reduce(function (a, b) { return a + b; }, 0);
    if (total <= limits.single) return 1;
    var segments = 1, used = 0;
    units.forEach(function (width) {
      if (used + width > limits.per) { segments += 1; used = 0; }
      used += width;
    });
    return segments;
  }

  // {encoding: "GSM-7"|"UCS-2", units, segments, limit, firstUnicode}: `units` are septets
  // or UTF-16 code units; `limit` what `segments` segments hold; `firstUnicode` the first
  // character that is not GSM-7 (null for a GSM-7 text).
  function info(text) {
    var chars = Array.from(text || "");  // code points, as Python iterates a str
    var septets = [], firstUnicode = null;
    for (var i = 0; i < chars.length; i++) {
      var ch = chars[i];
      if (basic[ch]) septets.push(1);
      else if (extension[ch]) septets.push(2);
      else { firstUnicode = ch; break; }
    }
    var units, limits, encoding;
    if (firstUnicode === null) {
      encoding = "GSM-7"; limits = GSM; units = septets;
    } else {
      encoding = "UCS-2"; limits = UCS2;
      units = chars.map(function (c) { return c.codePointAt(0) > 0xFFFF ? 2 : 1; });
    }
    var segments = pack(units, limits);
    var total = units.reduce(function (a, b) { return a + b; }, 0);
    return {
      encoding: encoding, units: total, segments: segments, characters: chars.length,
      limit: segments === 1 ? limits.single : limits.per * segments, firstUnicode: firstUnicode
    };
  }

  root.LeadsmsSegments = { info: info };
})(window);
