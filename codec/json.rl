/* json.rl - the RFC 8259 grammar shared by the envelope decoder and the
 * standalone validator (spec 5). Included by decoder.rl; not compiled alone.
 *
 * Nested objects and arrays are separate machines entered with fcall, so the
 * nesting depth is the call stack depth and is checked before every push.
 * Error actions classify a failure by where it happened; Ragel runs the
 * innermost machine's error action first and DCS__SETERR keeps the first
 * classification, so the most specific reason wins. */
%%{
    machine dcs_json;
    alphtype unsigned char;

    # Skip a run of plain string bytes in one go (see scan.h).
    action plain     { fexec dcs__scan_plain(p + 1, pe); }

    action err_str   { DCS__SETERR(*p < 0x20 ? DCS_ECONTROL : DCS_EUTF8); }
    action err_utf8  { DCS__SETERR(DCS_EUTF8); }
    action err_esc   { DCS__SETERR(DCS_EESCAPE); }
    # Inside \uXXXX the only hex digit that can fail is a low-surrogate
    # digit where none may stand (a lone low surrogate, or a high one
    # followed by anything but a low one).
    action err_uhex  { DCS__SETERR(dcs__is_hex(*p) ? DCS_ESURROGATE : DCS_EESCAPE); }
    action err_surr  { DCS__SETERR(DCS_ESURROGATE); }
    action err_num   { DCS__SETERR(DCS_ENUMBER); }
    action err_lit   { DCS__SETERR(DCS_ELITERAL); }
    # After a complete number or literal, a byte that could continue the
    # token ("01", "1x", "truex") spoils the token; anything else ("[1}")
    # is a structural error.
    action err_num_end { DCS__SETERR(dcs__token_byte(*p) ? DCS_ENUMBER : DCS_EUNEXPECTED); }
    action err_lit_end { DCS__SETERR(dcs__token_byte(*p) ? DCS_ELITERAL : DCS_EUNEXPECTED); }
    action err_value { DCS__SETERR(dcs__value_start_error(*p)); }

    # DCS__TOO_DEEP() records the failure; fbreak leaves cs at the state
    # after the value, where the decoder resumes once it has skipped it.
    action open_obj  { if (DCS__TOO_DEEP()) fbreak; fcall obj; }
    action open_arr  { if (DCS__TOO_DEEP()) fbreak; fcall arr; }
    action close     { DCS__CLOSE(); fret; }

    ws = [ \t\r\n];

    # UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
    tail = 0x80..0xbf;
    u8 = ( 0xc2..0xdf tail
         | 0xe0 0xa0..0xbf tail
         | ( 0xe1..0xec | 0xee..0xef ) tail tail
         | 0xed 0x80..0x9f tail
         | 0xf0 0x90..0xbf tail tail
         | 0xf1..0xf3 tail tail tail
         | 0xf4 0x80..0x8f tail tail ) <>!err_utf8;

    hex = [0-9a-fA-F];
    hexnd = [0-9a-cA-CeEfF];
    u_plain = hexnd hex hex hex | [dD] [0-7] hex hex;
    u_high = [dD] [89abAB] hex hex;
    u_low = [dD] [c-fC-F] hex hex;
    u_rest = ( '\\' 'u' ) @!err_surr . ( u_low @!err_uhex );
    u_body = u_plain @!err_uhex | ( u_high @!err_uhex ) . u_rest;
    action esc_seen  { DCS__ESC(); }
    esc = ( '\\' >esc_seen ( ["\\/bfnrt] | 'u' u_body ) ) <>!err_esc;

    plain = 0x20..0x7f - ["\\];
    # The string body after the opening quote. Each opening quote's action
    # also skips the plain bytes that follow it, so a plain string costs
    # two transitions (its quotes) and one scan.
    str_body = ( plain @plain | u8 | esc )* '"';
    string = ( '"' @plain str_body ) <>!err_str;

    # A run of digits is skipped from the action on its first digit; the
    # machine then reads only the last digit again, in the loop state.
    action digits    { { const unsigned char *q = p + 1;
                         while (q < pe && *q >= '0' && *q <= '9') q++;
                         if (q - 1 > p) fexec q - 1; } }
    int_part = '-'? ( '0' | [1-9] @digits [0-9]* );
    number = ( int_part ( '.' [0-9]+ )? ( [eE] [+\-]? [0-9]+ )? ) <>!err_num %!err_num_end;

    literal = ( 'true' | 'false' | 'null' ) <>!err_lit %!err_lit_end;

    value = ( string | number | literal | '{' @open_obj | '[' @open_arr ) >!err_value;
    member = string ws* ':' ws* value;

    obj := ws* ( member ws* ( ',' ws* member ws* )* )? '}' @close;
    arr := ws* ( value ws* ( ',' ws* value ws* )* )? ']' @close;
}%%
