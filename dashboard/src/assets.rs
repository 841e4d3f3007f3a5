//! The style sheet and the page script, inlined into every page (no extra requests, nothing to
//! cache-bust). The pages work without the script; it adds hover read-outs, drag-to-zoom,
//! sortable tables, auto-submitting pickers, the theme switch and the Explore history.

/// The style sheet: light and dark themes through CSS variables (`data-theme` on `<html>`, or
/// the system preference when unset), a 12-column panel grid that collapses on narrow screens.
pub const CSS: &str = r##"
:root{--bg:#f6f7f9;--fg:#1f2328;--panel:#fff;--border:#e1e4e8;--muted:#6e7781;--accent:#0969da;--soft:#eef1f4;--grid:#e4e7eb;--th:#f6f8fa;--errbg:#fff0f0;--errfg:#a40e26;--warnbg:#fff8c5}
html[data-theme=dark]{--bg:#111217;--fg:#d8d9da;--panel:#181b1f;--border:#2c3038;--muted:#8e949c;--accent:#5794f2;--soft:#22252b;--grid:#2a2e35;--th:#1e2127;--errbg:#3a1d21;--errfg:#ff7383;--warnbg:#3d3413;color-scheme:dark}
@media (prefers-color-scheme:dark){html:not([data-theme=light]){--bg:#111217;--fg:#d8d9da;--panel:#181b1f;--border:#2c3038;--muted:#8e949c;--accent:#5794f2;--soft:#22252b;--grid:#2a2e35;--th:#1e2127;--errbg:#3a1d21;--errfg:#ff7383;--warnbg:#3d3413;color-scheme:dark}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
nav.top{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;padding:8px 16px;background:var(--panel);border-bottom:1px solid var(--border)}
nav.top a{color:var(--fg);opacity:.85;text-decoration:none;padding:4px 8px;border-radius:6px}
nav.top a.brand{font-weight:700;color:#e8590c;opacity:1;margin-right:8px}
nav.top a.active,nav.top a:hover{background:var(--soft);opacity:1}
nav.top .sep{flex:1}
#theme-toggle{background:var(--soft);color:var(--fg);font-weight:400}
main{max-width:1600px;margin:0 auto;padding:16px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:20px 0 8px}
.toolbar{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;margin:8px 0 12px}
.ranges a{display:inline-block;padding:2px 9px;margin:2px;border:1px solid var(--border);border-radius:6px;color:var(--fg);text-decoration:none;background:var(--panel)}
.ranges a.active{background:var(--accent);border-color:var(--accent);color:#fff}
form.picker{display:flex;flex-wrap:wrap;gap:6px;align-items:center}
form.picker input{width:12em;padding:4px 6px;border:1px solid var(--border);border-radius:6px;background:var(--panel);color:var(--fg)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr));gap:12px}
.rowgrid{display:grid;grid-template-columns:repeat(12,minmax(0,1fr));gap:12px}
.panel{background:var(--panel);border:1px solid var(--border);border-radius:8px;padding:10px 12px;min-width:0}
.panel header{display:flex;justify-content:space-between;align-items:baseline;gap:8px}
.panel h3{margin:0;font-size:14px;font-weight:600}
.panel header a{font-size:12px;color:var(--accent);text-decoration:none;margin-left:8px}
.chart{position:relative;user-select:none}
.chart svg{display:block;width:100%;height:auto}
.chart svg text{fill:var(--muted)}
.chart svg [stroke="#E4E7EB"]{stroke:var(--grid)}
.chart svg [stroke="#555B66"]{stroke:var(--border)}
.hover-line{position:absolute;width:1px;background:var(--muted);pointer-events:none;display:none}
.hover-tip{position:absolute;z-index:5;background:var(--panel);border:1px solid var(--border);border-radius:6px;padding:6px 8px;font-size:12px;pointer-events:none;display:none;white-space:nowrap;box-shadow:0 2px 8px rgba(0,0,0,.2)}
.hover-tip .t{font-weight:600;margin-bottom:2px}
.zoom-sel{position:absolute;background:rgba(87,148,242,.2);border:1px solid var(--accent);pointer-events:none;display:none}
.sw{display:inline-block;width:12px;height:4px;border-radius:2px;margin-right:6px;vertical-align:middle}
table.legend{font-size:12px;margin-top:4px}
table.legend td,table.legend th{padding:1px 8px;border:0}
table.legend th{background:none;color:var(--muted);font-weight:500}
table.legend td.name{overflow-wrap:anywhere}
.legend-wrap{max-height:180px;overflow:auto}
code.expr{display:block;font-size:12px;color:var(--muted);margin:2px 0 6px;overflow-wrap:anywhere}
.error{background:var(--errbg);border:1px solid var(--errfg);color:var(--errfg);border-radius:6px;padding:8px 10px;overflow-wrap:anywhere;white-space:pre-wrap}
pre.errpos{background:var(--panel);border:1px solid var(--border);border-radius:6px;padding:8px;overflow-x:auto;font-size:13px}
pre.errpos mark{background:var(--errfg);color:#fff;border-radius:2px}
.notice{background:var(--warnbg);border:1px solid var(--border);border-radius:6px;padding:6px 10px;margin-bottom:12px}
.nodata{color:var(--muted);text-align:center;padding:48px 0}
.table-wrap{overflow-x:auto;background:var(--panel);border:1px solid var(--border);border-radius:8px}
.panel .table-wrap{border:0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--border);vertical-align:top}
th{background:var(--th);font-weight:600;font-size:13px;white-space:nowrap}
table.sortable th{cursor:pointer}
td.num,th.num{font-variant-numeric:tabular-nums;white-space:nowrap;text-align:right}
td.series{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.up{background:#dafbe1;color:#116329}
.badge.down{background:#ffebe9;color:#a40e26}
.badge.unknown{background:var(--soft);color:var(--muted)}
.label{display:inline-block;background:var(--soft);border-radius:4px;padding:0 6px;margin:1px 2px;font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.summary{display:flex;gap:8px;flex-wrap:wrap;margin-bottom:8px}
.stats{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline;min-height:70px}
.stat .v{font-size:30px;font-weight:600;font-variant-numeric:tabular-nums}
.stat .n{font-size:12px;color:var(--muted)}
.gauge{margin:8px 0}
.gauge .bar,.bars .bar{height:10px;border-radius:5px;background:var(--soft);overflow:hidden}
.gauge .fill,.bars .fill{height:100%;background:var(--accent)}
.bars .item{margin:4px 0}
.bars .item .top{display:flex;justify-content:space-between;gap:8px;font-size:12px}
.bars .item .top span:first-child{overflow-wrap:anywhere}
form.vars{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center}
form.vars label{display:flex;gap:6px;align-items:center}
form.query textarea{width:100%;min-height:64px;font:13px ui-monospace,SFMono-Regular,Menlo,monospace;padding:8px;border:1px solid var(--border);border-radius:6px;background:var(--panel);color:var(--fg)}
form.query .row{display:flex;gap:8px 14px;flex-wrap:wrap;margin-top:6px;align-items:center}
.tabs{display:flex;gap:4px;border-bottom:1px solid var(--border);margin:12px 0 8px}
.tabs a{padding:6px 12px;text-decoration:none;color:var(--fg);border-bottom:2px solid transparent}
.tabs a.active{border-bottom-color:var(--accent);font-weight:600}
#history li{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
button{background:var(--accent);color:#fff;border:0;border-radius:6px;padding:6px 14px;font-weight:600;cursor:pointer}
select{padding:4px;border-radius:6px;border:1px solid var(--border);background:var(--panel);color:var(--fg);max-width:20em}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;overflow-wrap:anywhere}
pre.config{background:var(--panel);border:1px solid var(--border);border-radius:8px;padding:10px;overflow:auto;font-size:12px}
.muted{color:var(--muted)}
.err{color:var(--errfg);overflow-wrap:anywhere}
a{color:var(--accent)}
@media (max-width:900px){.rowgrid>.panel{grid-column:span 12!important}}
@media (max-width:600px){main{padding:8px}th,td{padding:4px 6px}nav.top{padding:6px 8px}.stat .v{font-size:22px}}
"##;

/// Runs in `<head>` before the page is drawn: applies the theme saved by the switch.
pub const HEAD_JS: &str = r#"try{var t=localStorage.getItem('pharos-theme');if(t&&!document.documentElement.getAttribute('data-theme'))document.documentElement.setAttribute('data-theme',t)}catch(e){}"#;

/// The page script (progressive enhancement). It marks `<body data-js="ok">` once set up and
/// records uncaught errors in `data-js-errors`, which the browser tests read.
pub const JS: &str = r#"(function(){
var errs=[];
window.addEventListener('error',function(e){errs.push(String(e.message));document.body.setAttribute('data-js-errors',errs.join(' | '));});
function all(sel,el){return Array.prototype.slice.call((el||document).querySelectorAll(sel));}
function trim(v,d){var s=v.toFixed(d);if(s.indexOf('.')>=0)s=s.replace(/0+$/,'').replace(/\.$/,'');return s==='-0'?'0':s;}
function si(v){var a=Math.abs(v);if(a===0)return '0';var b=[[1e15,'P'],[1e12,'T'],[1e9,'G'],[1e6,'M'],[1e3,'k']];for(var i=0;i<b.length;i++){if(a>=b[i][0])return trim(v/b[i][0],2)+b[i][1];}if(a>=1)return trim(v,2);if(a>=1e-3)return trim(v,Math.floor(2-Math.log10(a)));return v.toExponential(2);}
function bytes(v){var u=['B','KiB','MiB','GiB','TiB','PiB','EiB'],s=1,i=0;while(i+1<u.length&&Math.abs(v)>=s*1024){s*=1024;i++;}return trim(v/s,2)+' '+u[i];}
function secs(v){var a=Math.abs(v);if(a===0)return '0s';if(a<1e-3)return trim(v*1e6,2)+'\u00b5s';if(a<1)return trim(v*1e3,2)+'ms';if(a<60)return trim(v,2)+'s';if(a<3600)return trim(v/60,2)+'m';if(a<86400)return trim(v/3600,2)+'h';return trim(v/86400,2)+'d';}
function fmt(unit,v){if(!isFinite(v))return String(v);switch(unit){case 'bytes':return bytes(v);case 'bytes/s':return bytes(v)+'/s';case 'percent':return trim(v,2)+'%';case 'ratio':return trim(v*100,2)+'%';case 'seconds':return secs(v);case 'ops/s':return si(v)+' ops/s';default:return si(v);}}
function p2(n){return (n<10?'0':'')+n;}
function fmtTime(t){var d=new Date(t);return d.getUTCFullYear()+'-'+p2(d.getUTCMonth()+1)+'-'+p2(d.getUTCDate())+' '+p2(d.getUTCHours())+':'+p2(d.getUTCMinutes())+':'+p2(d.getUTCSeconds())+' UTC';}
function go(params){var u=new URL(location.href);for(var k in params){if(params[k]===null)u.searchParams.delete(k);else u.searchParams.set(k,params[k]);}location.href=u.toString();}
var tb=document.getElementById('theme-toggle');
if(tb)tb.addEventListener('click',function(){var d=document.documentElement;var cur=d.getAttribute('data-theme')||(matchMedia('(prefers-color-scheme: dark)').matches?'dark':'light');var next=cur==='dark'?'light':'dark';d.setAttribute('data-theme',next);try{localStorage.setItem('pharos-theme',next);}catch(e){}});
all('.chart[data-x0]').forEach(function(c){
  var src=c.querySelector('script.chart-data');var svg=c.querySelector('svg');if(!src||!svg)return;
  var data=JSON.parse(src.textContent);
  var line=document.createElement('div');line.className='hover-line';
  var tip=document.createElement('div');tip.className='hover-tip';
  var sel=document.createElement('div');sel.className='zoom-sel';
  c.appendChild(line);c.appendChild(tip);c.appendChild(sel);
  var W=+c.dataset.w,x0=+c.dataset.x0,x1=+c.dataset.x1,y0=+c.dataset.y0,y1=+c.dataset.y1,t0=+c.dataset.start,t1=+c.dataset.end;
  var down=null;
  function scale(){return svg.getBoundingClientRect().width/W;}
  function svgX(ev){var r=svg.getBoundingClientRect();return (ev.clientX-r.left)/scale();}
  function timeAt(x){return t0+(x-x0)/(x1-x0)*(t1-t0);}
  function hide(){line.style.display='none';tip.style.display='none';}
  function show(x){
    var s=scale();
    var i=Math.round((timeAt(x)-data.t0)/data.step);if(i<0)i=0;if(i>=data.n)i=data.n-1;
    var t=data.t0+i*data.step;var px=x0+(t-t0)/(t1-t0)*(x1-x0);
    line.style.left=(px*s)+'px';line.style.top=(y0*s)+'px';line.style.height=((y1-y0)*s)+'px';line.style.display='block';
    var rows=data.series.map(function(se){return [se.v[i],se];}).filter(function(r){return r[0]!==null&&r[0]!==undefined;});
    rows.sort(function(a,b){return b[0]-a[0];});
    tip.textContent='';
    var h=document.createElement('div');h.className='t';h.textContent=fmtTime(t);tip.appendChild(h);
    rows.slice(0,15).forEach(function(r){var d=document.createElement('div');var sw=document.createElement('span');sw.className='sw';sw.style.background=r[1].color;d.appendChild(sw);d.appendChild(document.createTextNode(r[1].name+': '+fmt(data.unit,r[0])));tip.appendChild(d);});
    if(rows.length>15){var m=document.createElement('div');m.textContent='\u2026 '+(rows.length-15)+' more';tip.appendChild(m);}
    if(!rows.length){var e=document.createElement('div');e.textContent='no value';tip.appendChild(e);}
    tip.style.display='block';
    var left=px*s+12;if(left+tip.offsetWidth>c.clientWidth)left=px*s-12-tip.offsetWidth;
    tip.style.left=Math.max(0,left)+'px';tip.style.top=(y0*s)+'px';
    if(down!==null){var a=Math.min(down,x),b=Math.max(down,x);sel.style.left=(a*s)+'px';sel.style.width=((b-a)*s)+'px';sel.style.top=(y0*s)+'px';sel.style.height=((y1-y0)*s)+'px';sel.style.display='block';}
  }
  svg.addEventListener('mousemove',function(ev){var x=svgX(ev);if(x<x0||x>x1){hide();return;}show(x);});
  svg.addEventListener('mouseleave',hide);
  svg.addEventListener('mousedown',function(ev){var x=svgX(ev);if(x>=x0&&x<=x1){down=x;ev.preventDefault();}});
  window.addEventListener('mouseup',function(ev){if(down===null)return;var x=Math.max(x0,Math.min(x1,svgX(ev)));var a=Math.min(down,x),b=Math.max(down,x);down=null;sel.style.display='none';if((b-a)*scale()<5)return;go({from:String(Math.round(timeAt(a))),to:String(Math.round(timeAt(b))),range:null});});
});
all('table.sortable').forEach(function(t){
  all('th',t).forEach(function(th,ci){th.addEventListener('click',function(){
    var desc=th.getAttribute('data-dir')!=='desc';all('th',t).forEach(function(o){o.removeAttribute('data-dir');});th.setAttribute('data-dir',desc?'desc':'asc');
    var body=t.tBodies[0];var rows=all('tr',body);
    rows.sort(function(a,b){var x=a.cells[ci],y=b.cells[ci];if(!x||!y)return 0;var xv=x.getAttribute('data-v'),yv=y.getAttribute('data-v');var r;if(xv!==null&&yv!==null){r=(+xv)-(+yv);if(isNaN(r))r=0;}else{r=x.textContent.localeCompare(y.textContent);}return desc?-r:r;});
    rows.forEach(function(r){body.appendChild(r);});
  });});
});
all('form.vars select, form.autosubmit select').forEach(function(s){s.addEventListener('change',function(){s.form.submit();});});
var qf=document.querySelector('form.query');
if(qf){
  var ta=qf.querySelector('textarea');var key='pharos-history';
  function load(){try{return JSON.parse(localStorage.getItem(key)||'[]');}catch(e){return [];}}
  if(ta){ta.addEventListener('keydown',function(ev){if(ev.key==='Enter'&&(ev.ctrlKey||ev.metaKey)){ev.preventDefault();qf.submit();}});}
  var cur=ta?ta.value.trim():'';
  if(cur){var h=load().filter(function(e){return e!==cur;});h.unshift(cur);try{localStorage.setItem(key,JSON.stringify(h.slice(0,30)));}catch(e){}}
  var ul=document.getElementById('history');
  if(ul){var h2=load();if(h2.length){ul.parentNode.style.display='block';}h2.forEach(function(e){var li=document.createElement('li');var a=document.createElement('a');a.href='/graph?expr='+encodeURIComponent(e);a.textContent=e;li.appendChild(a);ul.appendChild(li);});}
}
document.body.setAttribute('data-js','ok');
})();"#;
